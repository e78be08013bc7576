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
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
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


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> np.random.Generator:
    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


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


@dataclass
class FitResult:
    best_score: float
    best_loss: float
    best_epoch: int
    epochs_run: int
    train_seconds: float
    history: list[dict]
    resumed_from_epoch: int | None


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
) -> FitResult:
    """Train ``model`` in place; on return it holds the best weights. ``best_extra`` is stored beside
    them in ``checkpoint.pt`` (what export needs: model args, classes, input spec...). ``stop_after``
    ends this call after that many epochs (a session's budget); ``resume=True`` later continues."""
    rng = seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(1, cfg.epochs * steps_per_epoch))
    ema = EMA(model, cfg.ema) if cfg.ema else None
    out_dir.mkdir(parents=True, exist_ok=True)
    best = {"score": -float("inf"), "loss": float("inf"), "epoch": -1}
    history: list[dict] = []
    start, spent, resumed = 0, 0.0, None
    last = out_dir / "last.pt"
    if resume and last.exists():
        state = torch.load(last, map_location=device, weights_only=False)
        if state["loop_config"] != asdict(cfg) or state["task_config"] != task_config:
            raise ValueError(f"{last} was written by another configuration; start a new run (or another --out)")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.model.load_state_dict(state["ema"])
            ema.updates = state["ema_updates"]
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        best, history, spent = state["best"], state["history"], state["train_seconds"]
        start = resumed = state["epoch"] + 1
    elif resume:
        print(f"nothing to resume in {out_dir}: starting afresh")

    def save_last(epoch: int) -> None:
        state = {
            "loop_config": asdict(cfg),
            "task_config": task_config,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "ema": ema.model.state_dict() if ema is not None else None,
            "ema_updates": ema.updates if ema is not None else 0,
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "best": best,
            "history": history,
            "train_seconds": spent + time.time() - t0,
        }
        torch.save(state, last.with_suffix(".tmp"))
        last.with_suffix(".tmp").replace(last)  # atomic: a kill mid-save keeps the previous one

    t0 = time.time()
    last_save = t0
    bar = tqdm(range(start, cfg.epochs), desc=desc, disable=not progress, unit="epoch", initial=start, total=cfg.epochs)
    stopped = False
    for epoch in bar:
        if epoch - best["epoch"] > cfg.patience and best["epoch"] >= 0:
            stopped = True
            break
        if stop_after is not None and epoch - start >= stop_after:
            break
        model.train()
        losses = []
        for x, y in batches(epoch, rng):
            y = y.to(device) if torch.is_tensor(y) else type(y)(t.to(device) for t in y)
            value = loss(model, x.to(device), y)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update(model)
            losses.append(value.item())
        judged = ema.model if ema is not None else model
        score, val_loss = validate(judged)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss, "val_score": score})
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", val=f"{score:.4f}")
        if (score, -val_loss) > (best["score"], -best["loss"]):
            best = {"score": score, "loss": val_loss, "epoch": epoch}
            torch.save(best_extra | {"state_dict": judged.state_dict(), "epoch": epoch}, out_dir / "checkpoint.pt")
        if time.time() - last_save >= cfg.save_every_s or epoch == cfg.epochs - 1:
            save_last(epoch)
            last_save = time.time()
    bar.close()
    if history:
        save_last(history[-1]["epoch"])
    train_seconds = spent + time.time() - t0
    model.load_state_dict(torch.load(out_dir / "checkpoint.pt", map_location=device, weights_only=False)["state_dict"])
    (out_dir / "loop.json").write_text(
        json.dumps({"best": best, "stopped_early": stopped, "train_seconds": round(train_seconds, 1)}, indent=2) + "\n"
    )
    return FitResult(best["score"], best["loss"], best["epoch"], len(history), train_seconds, history, resumed)
