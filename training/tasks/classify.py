"""Training an image classifier from the registry on the shared loop (``training/loop.py``): early
stopping, EMA, resumable checkpoints, export, and for gray digit-like data the framing and
upload augmentation that make it read what users send (``training/uploads.py``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from modelrepo.card import Architecture, CardDraft, DataProvenance, DomainCheck, Framing, InputSpec, OutputSpec
from modelrepo.framing import fit_domain_check, frame_image
from modelrepo.preprocess import preprocess
from training import robustness
from training.augment import random_affine
from training.data import Splits, load_splits
from training.evaluate import classification_report, write_report
from training.export import export_to_repository
from training.loop import LoopConfig, Run, fit_task, pick_device
from training.nets import PRESETS, build, get_arch
from training.uploads import PEN_SHARE, random_upload
from training.weights import load_weights

MIN_STROKE = 4.0  # px on the 32 px framing canvas: the UCI digits' strokes are 4-5 px there (5th pct / median)


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
    # gray data: frame every image as the data was framed (ink box, size, centre, polarity, alpha)
    framing: bool = True
    # the framing grid: 8 = the UCI digits' own 4 x 4 blocks of a 32 px bitmap; 16 keeps detail (small loops)
    # that the other training sources (fonts, handwriting) have; either way drawn on a 32 px canvas
    framing_grid: int = 8
    min_stroke: float = MIN_STROKE  # px on the 32 px canvas; thinner ink is thickened to it
    upload_fraction: float = 0.8  # framed data: share of training images drawn as random uploads
    pen_share: float = PEN_SHARE  # of the uploads drawn at >= 32 px, the share redrawn with a thin pen
    # of those drawn at >= 48 px, the share written on lit, maybe ruled paper (0.2 tried 2026-12-06: no better)
    paper_share: float = 0.0
    # digits data, extra training images joined by "+": "fonts" typeset digits (training/data/font_digits.py),
    # "hand" pen-motion handwriting (training/data/hand_digits.py); "" none
    extra_train: str = "fonts+hand"
    hand_per_class: int = 150
    ema: float | None = 0.99
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
    "framing",
    "framing_grid",
    "min_stroke",
    "upload_fraction",
    "pen_share",
    "paper_share",
    "extra_train",
    "hand_per_class",
    "ema",
    "seed",
    "weights",
)


def input_spec(
    splits: Splits, image_size: int, framed: bool = False, grid: int = 8, min_stroke: float = MIN_STROKE
) -> InputSpec:
    """The card's input spec; mean/std measured on the training split after framing and resizing."""
    channels = 1 if splits.color_mode == "L" else 3
    probe = InputSpec(
        color_mode=splits.color_mode,
        channels=channels,
        height=image_size,
        width=image_size,
        mean=[0.0] * channels,
        std=[1.0] * channels,
        resize="stretch",
        framing=Framing(grid=grid, fit=grid, supersample=32 // grid, min_stroke=min_stroke) if framed else None,
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


def _uploads(
    images: list[np.ndarray], rng: np.random.Generator, fraction: float, pen: float = PEN_SHARE, paper: float = 0.0
) -> list[Image.Image | np.ndarray]:
    """Each image, or with probability ``fraction`` a random upload of it (``training/uploads.py``)."""
    return [random_upload(im, rng, pen, paper) if rng.random() < fraction else im for im in images]


def _batches(cfg: ClassifyConfig, splits: Splits, spec: InputSpec, steps: int):
    """The loop's ``batches``: framed data is re-drawn as uploads and framed each epoch (the service's
    own preprocessing); other data gets small affine warps on the prepared tensors."""
    framed = spec.framing is not None
    fixed = None if framed else torch.from_numpy(preprocess(splits.train.images, spec))
    images, labels = list(splits.train.images), splits.train.labels
    n_own = len(images)
    extra = _extra_train(cfg, splits, spec)
    if extra is not None:  # extra images are always drawn as uploads, never fed as they are
        images, labels = images + extra[0], np.concatenate([labels, extra[1]])
    labels = torch.from_numpy(labels)
    mix = (cfg.pen_share, cfg.paper_share)

    def batches(epoch: int, rng: np.random.Generator):
        perm = rng.permutation(len(labels))
        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        for i in range(steps):
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            if framed:
                share = cfg.upload_fraction if cfg.augment else 0.0
                imgs = [_uploads([images[j]], rng, share if j < n_own else 1.0, *mix)[0] for j in idx]
                x = torch.from_numpy(preprocess(imgs, spec))
            else:
                x = fixed[idx]
                x = random_affine(x, g, **splits.augmentation) if cfg.augment else x
            yield x, labels[idx]

    return batches


def _extra_train(cfg: ClassifyConfig, splits: Splits, spec: InputSpec) -> tuple[list, np.ndarray, dict] | None:
    """Extra training images for framed digit data: (images, labels, what they are, per source) or None.
    ``extra_train`` names the sources, joined by "+": "fonts" (typeset glyphs), "hand" (pen-motion drawings)."""
    sources = [s for s in cfg.extra_train.split("+") if s]
    if not sources or spec.framing is None or splits.classes != [str(d) for d in range(10)]:
        return None
    images, labels, info = [], [], {}
    for source in sources:
        if source == "fonts":
            from training.data.font_digits import SOURCE, font_digits

            ims, ys, fonts = font_digits()
            info[source] = {"source": SOURCE, "generator": "training/data/font_digits.py (typeset glyphs, 64 px, "
                            "light on black)", "fonts": fonts, "count": len(ys)}  # fmt: skip
        elif source == "hand":
            from training.data.hand_digits import SOURCE, hand_digits

            ims, ys, params = hand_digits(cfg.hand_per_class)
            info[source] = {"source": SOURCE, "count": len(ys)} | params
        else:
            raise ValueError(f"extra_train: unknown source {source!r} (fonts, hand)")
        images += ims
        labels.append(ys)
    return images, np.concatenate(labels), info


def _validation(cfg: ClassifyConfig, splits: Splits, spec: InputSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation images, plus (framed data) two fixed random uploads of each: early stopping
    judges robustness, not only the clean digits."""
    images, labels = list(splits.val.images), splits.val.labels
    if spec.framing is not None and cfg.augment:
        rng = np.random.default_rng([cfg.seed, 1])
        mix = (cfg.pen_share, cfg.paper_share)
        images = images + _uploads(images, rng, 1.0, *mix) + _uploads(images, rng, 1.0, *mix)
        labels = np.concatenate([labels] * 3)
    return torch.from_numpy(preprocess(images, spec)), torch.from_numpy(labels)


def _build(cfg: ClassifyConfig, splits: Splits, spec: InputSpec) -> tuple[nn.Module, dict, dict]:
    """The network (with ``--weights`` loaded), its build arguments and the width/extra kwargs."""
    model_kwargs = dict(cfg.model_kwargs) | ({"width": cfg.width} if cfg.width is not None else {})
    model_args = dict(
        name=cfg.arch, preset=cfg.preset, num_classes=len(splits.classes), in_channels=spec.channels, **model_kwargs
    )
    model = build(**model_args)
    if cfg.weights:
        skipped = load_weights(model, cfg.weights)
        if skipped:
            print(f"{cfg.weights}: kept the network's own init for {skipped} (shape differs)")
    return model, model_args, model_kwargs


def _evaluate(model: nn.Module, cfg: ClassifyConfig, splits: Splits, spec: InputSpec, out_dir: Path):
    """Test-split report (and confusion matrix plot); framed data: the robustness suite too."""
    device = next(model.parameters()).device
    y_pred = predict(model, torch.from_numpy(preprocess(splits.test.images, spec)), device).argmax(1)
    report = classification_report(splits.test.labels, y_pred, splits.classes)
    write_report(report, out_dir, f"{cfg.model_name} on {splits.source} (test split)")
    robust = None
    if spec.framing is not None:
        robust = robustness.measure(
            lambda x: predict(model, torch.from_numpy(x), device), spec, splits.test.images, splits.test.labels
        )
        (out_dir / "robustness.json").write_text(json.dumps(robust, indent=2) + "\n")
    return report, robust


def train_classifier(
    cfg: ClassifyConfig,
    splits: Splits | None = None,
    run: Run = Run(),
) -> dict:
    """Train on the shared loop, keep the best validation epoch, evaluate on test (and, framed data,
    the robustness suite), write reports, optionally export."""
    device = pick_device(cfg.device)
    splits = splits or load_splits(cfg.data, cfg.data_dir, seed=cfg.seed, color_mode=cfg.color_mode)
    framed = cfg.framing and splits.color_mode == "L"
    spec = input_spec(splits, PRESETS[cfg.preset].image_size, framed, cfg.framing_grid, cfg.min_stroke)
    model, model_args, model_kwargs = _build(cfg, splits, spec)
    extra = _extra_train(cfg, splits, spec)
    steps = -(-(len(splits.train) + (len(extra[1]) if extra else 0)) // cfg.batch_size)
    steps = min(steps, cfg.max_batches) if cfg.max_batches else steps
    xv, yv = _validation(cfg, splits, spec)

    def validate(m: nn.Module) -> tuple[float, float]:
        logits = torch.from_numpy(predict(m, xv, device))
        return (logits.argmax(1) == yv).float().mean().item(), F.cross_entropy(logits, yv).item()

    loop = LoopConfig(cfg.epochs, cfg.lr, cfg.weight_decay, cfg.patience, cfg.ema, cfg.seed, cfg.device)
    saved = {"model_args": model_args, "classes": splits.classes, "input_spec": spec.model_dump()}
    fr, out_dir = fit_task(
        model, cfg, cfg.model_name, loop, steps, _batches(cfg, splits, spec, steps),
        lambda m, x, y: _loss(m(x), y, cfg.label_smoothing), validate, saved, run,
    )  # fmt: skip
    report, robust = _evaluate(model, cfg, splits, spec, out_dir)
    result = {
        "name": cfg.model_name,
        "test_accuracy": report["accuracy"],
        "robustness": robust,
        "best": {"val_acc": fr.best_score, "val_loss": fr.best_loss, "epoch": fr.best_epoch},
        "epochs_run": fr.epochs_run,
        "resumed_from_epoch": fr.resumed_from_epoch,
        "train_seconds": round(fr.train_seconds, 1),
        "out_dir": str(out_dir),
    }
    (out_dir / "history.json").write_text(json.dumps({"result": result, "history": fr.history}, indent=2) + "\n")
    if run.export_to is not None:
        if spec.framing is not None:
            domain = _domain(cfg, splits, spec)
            spec = spec.model_copy(update={"framing": spec.framing.model_copy(update={"domain": domain})})
        fields_ = _card_fields(cfg, splits, spec, model, model_kwargs, report, robust, fr, extra)
        x_parity = torch.from_numpy(preprocess(splits.test.images[:8], spec)).numpy()
        card = export_to_repository(
            model.cpu(), fields_, run.export_to, x_parity, version=run.version, overwrite=run.overwrite
        )
        result["exported"] = str(run.export_to / card.name)
        result["onnx_bytes"] = card.versions[card.latest_version].bytes
    return result


def _domain(cfg: ClassifyConfig, splits: Splits, spec: InputSpec) -> DomainCheck:
    """The out-of-domain check: principal subspace of framed training digits, uploads of them and of the
    extra training images; threshold from framed validation digits, uploads of them and (with "hand" among
    the extras) uploads of handwriting drawn with a seed training never used (``modelrepo/framing.py``)."""
    assert spec.framing is not None
    rng = np.random.default_rng([cfg.seed, 2])

    def grids(images: list) -> np.ndarray:
        framed = [
            frame_image(im if isinstance(im, Image.Image) else Image.fromarray(im), spec.framing)[0] for im in images
        ]
        return np.stack([np.asarray(g, np.float64).ravel() / 255.0 for g in framed])

    train, val = list(splits.train.images), list(splits.val.images)
    mix = (cfg.pen_share, cfg.paper_share)
    held_out = val + _uploads(val, rng, 1.0, *mix) + _uploads(val, rng, 1.0, *mix)
    fit = train + _uploads(train, rng, 1.0, *mix)
    extra = _extra_train(cfg, splits, spec)
    if extra is not None:  # training images too: real handwriting like them is not "unlike training"
        fit += _uploads(list(extra[0]), rng, 1.0, *mix)
    if "hand" in cfg.extra_train.split("+"):
        from training.data.hand_digits import hand_digits

        held_out += _uploads(hand_digits(20, seed=10_000 + cfg.seed)[0], rng, 1.0, *mix)
    return fit_domain_check(grids(fit), grids(held_out))


UPLOADS = (
    "training/uploads.py random_upload: sizes 8-128 px with random resampling filters, down/up round trips, "
    "rotation/shear/zoom/elastic warps, thick/thin strokes and thin-pen redraws, blur, margins, paper tone and "
    "contrast, Gaussian noise, inverted polarity, transparent canvases, JPEG q30-95, ink on unevenly lit (tilted "
    "light, soft shadows), plain / ruled / squared paper (paper_share); then framed by the card's own preprocessing"
)


def _card_fields(cfg, splits, spec, model, model_kwargs, report, robust, fr, extra) -> CardDraft:
    metrics = {"accuracy": round(report["accuracy"], 6), "val_accuracy": round(fr.best_score, 6)}
    if robust:
        metrics[robustness.HEADLINE] = robustness.headline(robust)
    augmentation = splits.augmentation if cfg.augment else {}
    if spec.framing is not None and cfg.augment:
        augmentation = {
            "uploads": UPLOADS,
            "upload_fraction": cfg.upload_fraction,
            "pen_share": cfg.pen_share,
            "paper_share": cfg.paper_share,
        }
    if extra is not None:
        use = "training only, always as random uploads; never in validation, test or the robustness suite"
        augmentation["extra_training_images"] = {name: info | {"use": use} for name, info in extra[2].items()}
    return CardDraft(
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
            augmentation=augmentation,
        ),
        hyperparameters={k: getattr(cfg, k) for k in _CARD_HYPERPARAMETERS}
        | {
            "optimizer": "AdamW + OneCycleLR (training/loop.py)",
            "loss": "cross entropy (+0.3 x aux for GoogLeNet)",
            "best_epoch": fr.best_epoch,
            "epochs_run": fr.epochs_run,
            "train_seconds": round(fr.train_seconds),
            "hardware": _hardware(),
        },
        metrics=metrics,
        headline_metric=robustness.HEADLINE if robust else "accuracy",
        robustness=robust,
    )


def _hardware() -> str:
    import os
    import platform

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return gpu or f"CPU ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
