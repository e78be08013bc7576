"""The shared training loop: seed, device, AdamW + one-cycle schedule, progress bar, EMA of weights,
early stopping, and checkpoints that a later run resumes from (``--resume``).

A task gives the loop three callables:

- ``batches(epoch, rng)`` yields ``(x, y)`` tensors for one epoch (the task draws its augmentation
  from ``rng``, a numpy generator whose state the checkpoint keeps);
- ``loss(model, x, y)`` returns the scalar loss;
- ``validate(model)`` returns ``(score, loss)``, higher score better.

``runs/<name>/last.pt`` holds everything needed to continue (weights, optimiser, schedule, EMA,
RNG states, epoch, best so far, history, the task's config); ``runs/<name>/checkpoint.pt`` holds the
best weights (EMA ones when EMA is on) with the task's own fields for export.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm


@dataclass
class LoopConfig:
    epochs: int = 40
    lr: float = 2e-3
    weight_decay: float = 5e-4
    patience: int = 10  # early stopping: epochs without a better validation score
    ema: float | None = None  # EMA decay per step (e.g. 0.999); None: plain weights
    seed: int = 0
    device: str = "auto"
    save_every_s: float = 120.0  # last.pt at least this often (and at every epoch end that passes it)
    # or "warmup_constant": linear warm-up, then constant (long, open-ended runs); "warmup_cosine": the same
    # warm-up, then a cosine fall to zero at the last planned step (an annealing phase after a constant one)
    schedule: str = "onecycle"
    warmup_steps: int = 500  # warmup_constant / warmup_cosine


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> np.random.Generator:
    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def warmup_cosine(warmup: int, total: int, step: int) -> float:
    """The rate's factor at ``step``: linear warm-up over ``warmup`` steps, then half a cosine from 1 to 0 at
    step ``total``."""
    warm = max(1, warmup)
    if step < warm:
        return (step + 1) / warm
    done = min(1.0, (step - warm) / max(1, total - warm))
    return 0.5 * (1 + math.cos(math.pi * done))


class EMA:
    """Exponential moving average of a model's parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        # warm-up (as timm and TensorFlow do): early averages must not keep the random init around,
        # which a network with batch norm cannot survive
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for e, p in zip(self.model.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)
            else:
                e.copy_(p)


@dataclass(frozen=True)
class Run:
    """How a task's training is run and where its model goes: every trainer takes one."""

    export_to: Path | None = None  # model repository to export into; None: train and report only
    version: int | None = None  # version to write (None: the next free one)
    overwrite: bool = False  # replace an existing version
    progress: bool = True  # progress bars
    resume: bool = False  # continue from runs/<name>/last.pt
    budget_s: float | None = None  # stop training after this long in this call (resume later); None: no limit
    init_from: Path | None = None  # a committed model (dir or model.onnx) whose weights a new run starts from


@dataclass
class FitResult:
    best_score: float
    best_loss: float
    best_epoch: int
    epochs_run: int
    train_seconds: float
    history: list[dict]
    resumed_from_epoch: int | None
    initialised_from: dict | None = None  # the committed model a warm start began from (warmstart.prior_training)


def _differences(saved: dict, now: dict) -> list[str]:
    """Settings that differ between a checkpoint's configuration and this one. Fields added to a
    config since the checkpoint was written are not differences (old runs stay resumable)."""
    return [f"{k}: {saved[k]!r} -> {now[k]!r}" for k in sorted(saved.keys() & now.keys()) if saved[k] != now[k]]


class _Run:
    """One call of ``fit``: the optimiser, schedule, EMA, RNG and bookkeeping that ``last.pt`` holds."""

    def __init__(self, model: nn.Module, cfg: LoopConfig, steps_per_epoch: int, out_dir: Path, task_config: dict):
        self.cfg, self.task_config, self.out_dir = cfg, task_config, out_dir
        self.rng = seed_everything(cfg.seed)
        self.device = pick_device(cfg.device)
        self.model = model.to(self.device)
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        total = max(1, cfg.epochs * steps_per_epoch)
        if cfg.schedule == "onecycle":
            self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=cfg.lr, total_steps=total)
        elif cfg.schedule == "warmup_constant":
            warm = max(1, cfg.warmup_steps)
            self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda step: min(1.0, (step + 1) / warm))
        elif cfg.schedule == "warmup_cosine":
            self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, partial(warmup_cosine, cfg.warmup_steps, total))
        else:
            raise ValueError(f"unknown schedule {cfg.schedule!r}")
        self.ema = EMA(model, cfg.ema) if cfg.ema else None
        self.best = {"score": -float("inf"), "loss": float("inf"), "epoch": -1}
        self.history: list[dict] = []
        self.start, self.spent, self.t0 = 0, 0.0, time.time()
        self.initialised: dict | None = None
        self.last = out_dir / "last.pt"
        out_dir.mkdir(parents=True, exist_ok=True)

    @property
    def judged(self) -> nn.Module:
        return self.ema.model if self.ema is not None else self.model

    def restore(self) -> int | None:
        """Continue from ``last.pt``; the epoch it resumes at, or None when there is nothing to resume."""
        if not self.last.exists():
            print(f"nothing to resume in {self.out_dir}: starting afresh")
            return None
        state = torch.load(self.last, map_location=self.device, weights_only=False)
        differ = _differences(state["loop_config"], asdict(self.cfg)) + _differences(
            state["task_config"], self.task_config
        )
        if differ:
            raise ValueError(
                f"{self.last} was written by another configuration ({', '.join(differ)}); "
                "start a new run (or another --out)"
            )
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.model.load_state_dict(state["ema"])
            self.ema.updates = state["ema_updates"]
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        self.best, self.history, self.spent = state["best"], state["history"], state["train_seconds"]
        self.start = state["epoch"] + 1
        self.initialised = state.get("initialised_from")
        return self.start

    def warm_start(self, path: Path, batches=None) -> dict:
        """Weights (and EMA) from a committed model; the optimiser starts afresh. What that model had
        been trained for is returned and kept in ``last.pt`` (a resumed warm start still knows it).
        Batch norms an old export had folded get their statistics from a first batch of ``batches``."""
        from training.warmstart import calibrate_unfolded_norms, load_onnx_weights, prior_training

        load_onnx_weights(self.model, path)
        if batches is not None:
            x = next(iter(batches(0, np.random.default_rng(0))))[0]
            if calibrate_unfolded_norms(self.model, x.to(self.device)):
                print("batch norms folded in the export: statistics calibrated on a training batch")
        if self.ema is not None:
            self.ema.model.load_state_dict(self.model.state_dict())
        self.initialised = prior_training(path)
        print(f"warm start from {self.initialised['model']}")
        return self.initialised

    def seconds(self) -> float:
        return self.spent + time.time() - self.t0

    def save(self, epoch: int) -> None:
        state = {
            "loop_config": asdict(self.cfg),
            "task_config": self.task_config,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "ema": self.ema.model.state_dict() if self.ema is not None else None,
            "ema_updates": self.ema.updates if self.ema is not None else 0,
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "best": self.best,
            "history": self.history,
            "train_seconds": self.seconds(),
            "initialised_from": self.initialised,
        }
        torch.save(state, self.last.with_suffix(".tmp"))
        self.last.with_suffix(".tmp").replace(self.last)  # atomic: a kill mid-save keeps the previous one

    def train_epoch(self, epoch: int, batches, loss) -> float:
        self.model.train()
        losses = []
        for x, y in batches(epoch, self.rng):
            y = y.to(self.device) if torch.is_tensor(y) else type(y)(t.to(self.device) for t in y)
            value = loss(self.model, x.to(self.device), y)
            self.opt.zero_grad(set_to_none=True)
            value.backward()
            self.opt.step()
            self.sched.step()
            if self.ema is not None:
                self.ema.update(self.model)
            losses.append(value.item())
        return float(np.mean(losses))


def fit(
    model: nn.Module,
    cfg: LoopConfig,
    steps_per_epoch: int,
    batches: Callable[[int, np.random.Generator], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
    validate: Callable[[nn.Module], tuple[float, float]],
    out_dir: Path,
    best_extra: dict,
    task_config: dict,
    resume: bool = False,
    progress: bool = True,
    desc: str = "train",
    stop_after: int | None = None,
    budget_s: float | None = None,
    init_from: Path | None = None,
) -> FitResult:
    """Train ``model`` in place; on return it holds the best weights. ``best_extra`` is stored beside
    them in ``checkpoint.pt`` (what export needs: model args, classes, input spec...). ``stop_after``
    ends this call after that many epochs, ``budget_s`` at the first epoch end after that many seconds
    (a session's budget); ``resume=True`` later continues. ``init_from``: a new run (nothing resumed)
    starts from that committed model's weights (``training.warmstart``); a resumed one keeps its own."""
    run = _Run(model, cfg, steps_per_epoch, out_dir, task_config)
    resumed = run.restore() if resume else None
    if init_from is not None and resumed is None:
        run.warm_start(init_from, batches)
    last_save, stopped = time.time(), False
    epochs = range(run.start, cfg.epochs)
    bar = tqdm(epochs, desc=desc, disable=not progress, unit="epoch", initial=run.start, total=cfg.epochs)
    for epoch in bar:
        if epoch - run.best["epoch"] > cfg.patience and run.best["epoch"] >= 0:
            stopped = True
            break
        if stop_after is not None and epoch - run.start >= stop_after:
            break
        if budget_s is not None and time.time() - run.t0 >= budget_s:
            break
        train_loss = run.train_epoch(epoch, batches, loss)
        score, val_loss = validate(run.judged)
        run.history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_score": score})
        bar.set_postfix(loss=f"{train_loss:.3f}", val=f"{score:.4f}")
        if (score, -val_loss) > (run.best["score"], -run.best["loss"]):
            run.best = {"score": score, "loss": val_loss, "epoch": epoch}
            torch.save(best_extra | {"state_dict": run.judged.state_dict(), "epoch": epoch}, out_dir / "checkpoint.pt")
        if time.time() - last_save >= cfg.save_every_s or epoch == cfg.epochs - 1:
            run.save(epoch)
            last_save = time.time()
    bar.close()
    if run.history:
        run.save(run.history[-1]["epoch"])
    best_state = torch.load(out_dir / "checkpoint.pt", map_location=run.device, weights_only=False)["state_dict"]
    model.load_state_dict(best_state)
    summary = {"best": run.best, "stopped_early": stopped, "train_seconds": round(run.seconds(), 1)}
    (out_dir / "loop.json").write_text(json.dumps(summary, indent=2) + "\n")
    b = run.best
    return FitResult(
        b["score"], b["loss"], b["epoch"], len(run.history), run.seconds(), run.history, resumed, run.initialised
    )


def fit_task(
    model: nn.Module,
    task_cfg,
    name: str,
    loop: LoopConfig,
    steps: int,
    batches,
    loss,
    validate,
    saved: dict,
    run: Run,
) -> tuple[FitResult, Path]:
    """``fit`` for a task's config dataclass: runs/<name> under its ``out``; the resume key is the
    config minus where it runs (``out``, ``device``) and what the task lists in ``RUN_ONLY``; the
    config itself is saved beside the best weights."""
    out_dir = Path(task_cfg.out) / name
    run_only = ("out", "device", *getattr(task_cfg, "RUN_ONLY", ()))  # settings that do not change training
    task_config = {k: v for k, v in asdict(task_cfg).items() if k not in run_only}
    saved = saved | {"config": asdict(task_cfg)}
    result = fit(
        model,
        loop,
        steps,
        batches,
        loss,
        validate,
        out_dir,
        saved,
        task_config,
        resume=run.resume,
        progress=run.progress,
        desc=name,
        budget_s=run.budget_s,
        init_from=run.init_from,
    )
    return result, out_dir
