"""Training an image classifier from the registry, with early stopping, checkpoints and export."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from modelrepo.card import Architecture, DataProvenance, InputSpec, OutputSpec
from modelrepo.preprocess import preprocess
from training.augment import random_affine
from training.data import Splits, load_splits
from training.evaluate import classification_report, write_report
from training.export import export_to_repository
from training.nets import PRESETS, build, get_arch
from training.weights import load_weights


@dataclass
class ClassifyConfig:
    arch: str = "resnet20"
    name: str | None = None  # model name in the repository; default "<arch>_<data>"
    data: str = "digits"  # digits | folder
    data_dir: str | None = None
    color_mode: str = "RGB"  # for folder data: L or RGB
    preset: str = "small"
    width: float | None = None  # channel width multiplier; None keeps the preset's
    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    patience: int = 10  # early stopping: epochs without a better validation score
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    out: str = "runs"
    max_batches: int | None = None  # cap batches per epoch (tests)
    weights: str | None = None  # initial weights, e.g. a torchvision ImageNet .pth (same arch)
    model_kwargs: dict = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return self.name or f"{self.arch}_{self.data}"


# the configuration fields a card records (paths, devices and test caps are not part of the recipe)
_CARD_HYPERPARAMETERS = (
    "arch",
    "preset",
    "width",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "label_smoothing",
    "patience",
    "augment",
    "seed",
    "weights",
)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def input_spec(splits: Splits, image_size: int) -> InputSpec:
    """The card's input spec; mean/std measured on the training split after resizing."""
    channels = 1 if splits.color_mode == "L" else 3
    probe = InputSpec(
        color_mode=splits.color_mode,
        channels=channels,
        height=image_size,
        width=image_size,
        mean=[0.0] * channels,
        std=[1.0] * channels,
        resize="stretch",
    )
    x = preprocess(splits.train.images, probe)  # (N, C, H, W) in [0, 1]
    mean = [round(float(v), 4) for v in x.mean(axis=(0, 2, 3), dtype=np.float64)]
    std = [round(float(v), 4) for v in x.std(axis=(0, 2, 3), dtype=np.float64)]
    return probe.model_copy(update={"mean": mean, "std": std})


def _loss(out: torch.Tensor | tuple, y: torch.Tensor, smoothing: float) -> torch.Tensor:
    if isinstance(out, tuple):  # GoogLeNet in training mode: (logits, aux1, aux2), aux weight 0.3
        main, *aux = out
        return F.cross_entropy(main, y, label_smoothing=smoothing) + 0.3 * sum(
            F.cross_entropy(a, y, label_smoothing=smoothing) for a in aux
        )
    return F.cross_entropy(out, y, label_smoothing=smoothing)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 256) -> np.ndarray:
    model.eval()
    return torch.cat([model(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]).numpy()


def train_classifier(
    cfg: ClassifyConfig,
    splits: Splits | None = None,
    export_to: Path | None = None,
    version: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Train, keep the best validation epoch, evaluate on test, write reports, optionally export."""
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    splits = splits or load_splits(cfg.data, cfg.data_dir, seed=cfg.seed, color_mode=cfg.color_mode)
    preset = PRESETS[cfg.preset]
    spec = input_spec(splits, preset.image_size)
    xs = {s: torch.from_numpy(preprocess(getattr(splits, s).images, spec)) for s in ("train", "val", "test")}
    ys = {s: torch.from_numpy(getattr(splits, s).labels) for s in ("train", "val", "test")}

    model_kwargs = dict(cfg.model_kwargs) | ({"width": cfg.width} if cfg.width is not None else {})
    model_args = dict(
        name=cfg.arch, preset=cfg.preset, num_classes=len(splits.classes), in_channels=spec.channels, **model_kwargs
    )
    model = build(**model_args)
    if cfg.weights:
        skipped = load_weights(model, cfg.weights)
        if skipped:
            print(f"{cfg.weights}: kept the network's own init for {skipped} (shape differs)")
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = -(-len(xs["train"]) // cfg.batch_size)
    if cfg.max_batches:
        steps_per_epoch = min(steps_per_epoch, cfg.max_batches)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    g = torch.Generator().manual_seed(cfg.seed)
    out_dir = Path(cfg.out) / cfg.model_name
    out_dir.mkdir(parents=True, exist_ok=True)

    best = {"val_acc": -1.0, "val_loss": float("inf"), "epoch": -1}
    history = []
    bar = tqdm(range(cfg.epochs), desc=cfg.model_name, disable=not progress, unit="epoch")
    t0 = time.time()
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(xs["train"]), generator=g)
        losses = []
        for i in range(steps_per_epoch):
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x, y = xs["train"][idx], ys["train"][idx]
            if cfg.augment:
                x = random_affine(x, g, **splits.augmentation)
            loss = _loss(model(x.to(device)), y.to(device), cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        logits = torch.from_numpy(predict(model, xs["val"], device))
        val_loss = F.cross_entropy(logits, ys["val"]).item()
        val_acc = (logits.argmax(1) == ys["val"]).float().mean().item()
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss, "val_acc": val_acc})
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", val_acc=f"{val_acc:.4f}")
        if (val_acc, -val_loss) > (best["val_acc"], -best["val_loss"]):
            best = {"val_acc": val_acc, "val_loss": val_loss, "epoch": epoch}
            torch.save(
                {
                    "model_args": model_args,
                    "config": asdict(cfg),
                    "classes": splits.classes,
                    "input_spec": spec.model_dump(),
                    "state_dict": model.state_dict(),
                    "epoch": epoch,
                },
                out_dir / "checkpoint.pt",
            )
        elif epoch - best["epoch"] >= cfg.patience:
            break
    bar.close()
    train_seconds = time.time() - t0

    ckpt = torch.load(out_dir / "checkpoint.pt", map_location=device)
    model.load_state_dict(ckpt["state_dict"])
    y_pred = predict(model, xs["test"], device).argmax(1)
    report = classification_report(ys["test"].numpy(), y_pred, splits.classes)
    write_report(report, out_dir, f"{cfg.model_name} on {splits.source} (test split)")
    result = {
        "name": cfg.model_name,
        "test_accuracy": report["accuracy"],
        "best": best,
        "epochs_run": len(history),
        "train_seconds": round(train_seconds, 1),
        "out_dir": str(out_dir),
    }
    (out_dir / "history.json").write_text(json.dumps({"result": result, "history": history}, indent=2) + "\n")

    if export_to is not None:
        model = model.cpu()
        card_fields = dict(
            name=cfg.model_name,
            task="classification",
            description=f"{cfg.arch} ({cfg.preset} preset) trained on {splits.description}",
            architecture=Architecture(
                name=cfg.arch,
                family=get_arch(cfg.arch).family,
                preset=cfg.preset,
                kwargs=model_kwargs,
                num_parameters=sum(p.numel() for p in model.parameters()),
            ),
            input=spec,
            output=OutputSpec(name="logits", kind="logits", shape=[len(splits.classes)], postprocess="softmax"),
            labels=splits.classes,
            training=DataProvenance(
                source=splits.source,
                description=splits.description,
                split=splits.fractions,
                sizes=splits.sizes,
                seed=splits.seed,
                augmentation=splits.augmentation if cfg.augment else {},
            ),
            hyperparameters={k: getattr(cfg, k) for k in _CARD_HYPERPARAMETERS}
            | {
                "optimizer": "AdamW + OneCycleLR",
                "loss": "cross entropy (+0.3 x aux for GoogLeNet)",
                "best_epoch": best["epoch"],
                "epochs_run": len(history),
                "train_seconds": round(train_seconds),
            },
            metrics={"accuracy": round(report["accuracy"], 6), "val_accuracy": round(best["val_acc"], 6)},
        )
        card = export_to_repository(
            model, card_fields, export_to, xs["test"][:8].numpy(), version=version, overwrite=overwrite
        )
        result["exported"] = str(export_to / card.name)
        result["onnx_bytes"] = card.versions[card.latest_version].bytes
    return result
