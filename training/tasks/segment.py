"""Training the segmentation U-Net with the paper's weight map; evaluation against a classical baseline."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from modelrepo.card import Architecture, CardDraft, DataProvenance, InputSpec, OutputSpec
from modelrepo.preprocess import preprocess
from modelrepo.segmentation import equivalent_diameters
from training.data.cells import CLASSES, CellImage, augment_cells, classes_from_instances, make_cell_dataset
from training.data.cells_alt import make_alt_cell_dataset
from training.data.cells_random import make_random_cell_dataset
from training.export import export_to_repository
from training.loop import LoopConfig, Run, fit_task, pick_device
from training.nets.unet import UNet
from training.seg_metrics import object_f1
from training.tasks.segment_eval import (
    baseline_instances,
    card_metrics,
    choose_core,
    methods,
    plot_panel,
    score_sets,
    segment_all,
    torch_logits,
)
from training.weight_map import edge_distance, unet_weight_map

DATA_SOURCE = "training.data.cells (synthetic fluorescence-like touching cells)"
GENERATORS = {"cells_random": make_random_cell_dataset, "cells": make_cell_dataset}
SOURCES = {"cells_random": "training.data.cells_random (domain-randomised fluorescence cells)", "cells": DATA_SOURCE}


@dataclass
class SegmentConfig:
    name: str = "unet_cells"
    # cells_random (domain-randomised, training/data/cells_random.py) | cells (the first generator) |
    # folder (image/mask pairs, see training/data/mask_folder.py)
    data: str = "cells_random"
    data_dir: str | None = None
    mask_kind: str = "auto"  # folder masks: auto | classes | instances
    n_train: int = 1600
    n_val: int = 24
    n_test: int = 40
    n_cross: int = 40  # held-out images from the second, independent generator (training/data/cells_alt.py)
    size: int = 128
    base: int = 16
    depth: int = 4
    epochs: int = 14
    batch_size: int = 8
    lr: float = 2e-3
    loss: str = "weighted"  # weighted: the U-Net paper's weight map | plain: unweighted cross entropy
    w0: float = 10.0
    sigma: float = 5.0
    elastic: bool = True
    min_size: int = 15
    pmin: float = 1.0
    pmax: float = 99.8
    ema: float | None = 0.99
    patience: int = 12
    seed: int = 0
    device: str = "auto"
    out: str = "runs"
    max_batches: int | None = None
    contact_seam: float = 0.7  # cells_random: share of images whose touching cells meet at a dimmer line
    zoom: float = 0.0  # share of training images seen magnified 1-3x (a crop enlarged: noise and blur with it)
    # weight of a fourth output channel's loss: each cell's distance to its own edge (0: no such channel); its
    # cores split touching cells by shape (instances "distance")
    distance: float = 0.0
    # the border class: every cell's outermost ring (True) or only where cells touch (False, the paper's)
    outline: bool = False
    # the weight map's border term also on the border class - the cell pixels where touching cells meet - not only
    # on the background gaps (the paper's labels part touching cells by background; ours by that class)
    contact_weight: bool = False
    # cells_random: the training split's cell radii (px; None: the generator's 4-36). Validation and test keep the
    # whole range: they measure the served pipeline, which rescales cells outside the trained sizes to them
    train_radius: tuple[float, float] | None = None
    # cells_random: share of the training split's images whose overlapping cells are stacked (the later one on
    # top owns the overlap and shows its whole outline; overlaps up to half the radii) instead of parted where
    # their distances are equal. Validation and test keep the generator's default (0)
    occlude: float = 0.0
    # the training labels' border class where touching cells meet: px on each side of the contact (1: a 2 px line,
    # every card before 2026-12-07 (fifth session)); wider, the predicted line between merged-looking cells
    # should break less often. Validation and test labels keep 1 (the served instances are whole cells either way)
    contact_px: int = 1

    # not part of the resume key: a trial run in runs/<trial> can be copied to runs/<name> and exported under it
    RUN_ONLY: ClassVar[tuple[str, ...]] = ("name",)

    def __post_init__(self) -> None:
        if self.train_radius is not None:  # one form whether it came from the CLI (a list) or a recipe or card
            self.train_radius = (float(self.train_radius[0]), float(self.train_radius[1]))


def input_spec(cfg: SegmentConfig) -> InputSpec:
    return InputSpec(
        color_mode="L",
        channels=1,
        height="any",
        width="any",
        mean=[0.0],
        std=[1.0],
        resize="none",
        normalization="percentile",
        percentiles=(cfg.pmin, cfg.pmax),
        pad_multiple=2**cfg.depth,
    )


def splits(cfg: SegmentConfig, only: tuple[str, ...] = ("train", "val", "test")) -> dict[str, list[CellImage]]:
    """Generated cells: three disjoint sets, each with its own seed derived from cfg.seed (``only``
    makes just those). Or a user folder."""
    if cfg.data == "folder":
        from training.data.mask_folder import load_mask_folder

        if not cfg.data_dir:
            raise ValueError("--data folder needs --data-dir")
        return load_mask_folder(cfg.data_dir, seed=cfg.seed, kind=cfg.mask_kind)
    if cfg.data not in GENERATORS:
        raise ValueError(f"unknown dataset {cfg.data!r} ({' | '.join(GENERATORS)} | folder)")
    make = GENERATORS[cfg.data]
    extra = {"seam": cfg.contact_seam} if cfg.data == "cells_random" else {}
    train_only = {}  # what the training split alone varies: validation and test measure the served pipeline
    if cfg.data == "cells_random":
        train_only = {"occlude": cfg.occlude} | ({"radius": tuple(cfg.train_radius)} if cfg.train_radius else {})
    sizes = [("train", cfg.n_train), ("val", cfg.n_val), ("test", cfg.n_test)]
    return {
        name: make(n, seed=cfg.seed * 1000 + k, size=cfg.size, **extra, **(train_only if name == "train" else {}))
        for k, (name, n) in enumerate(sizes)
        if name in only
    }


def held_out_sets(cfg: SegmentConfig, data: dict[str, list[CellImage]]) -> dict[str, list[CellImage]]:
    """Every held-out set the card reports: ``own`` (the training generator's test split) and, for
    generated data, ``cross`` (the independent generator, never trained on), ``cross_x2`` (the same
    images at twice the magnification: cells up to 140 px across, far beyond the trained sizes - the
    served pipeline has to find the scale) and ``first`` (the first generator's test split, as the
    previous model was measured)."""
    sets = {"own": data["test"]}
    if cfg.data in GENERATORS:
        sets["cross"] = make_alt_cell_dataset(cfg.n_cross, seed=cfg.seed * 1000 + 7)
        sets["cross_x2"] = magnified(sets["cross"], 2)
        if cfg.data != "cells":
            sets["first"] = make_cell_dataset(24, seed=cfg.seed * 1000 + 2, size=128)
    return sets


def held_out_only(cfg: SegmentConfig) -> dict[str, list[CellImage]]:
    """``held_out_sets`` regenerated from ``cfg`` alone (only the test split drawn): what a card is re-measured on."""
    return held_out_sets(cfg, splits(cfg, only=("test",)))


def magnified(data: list[CellImage], k: int) -> list[CellImage]:
    """The same cells seen through a k x higher magnification: images resized bilinearly, labels by
    nearest neighbour (cells k times as wide, nothing else changed)."""
    from scipy import ndimage as ndi

    def zoom(c: CellImage) -> CellImage:
        image = np.clip(ndi.zoom(c.image.astype(np.float64), k, order=1), 0, np.iinfo(c.image.dtype).max)
        inst = ndi.zoom(c.instances, k, order=0)
        return CellImage(image.round().astype(c.image.dtype), inst, classes_from_instances(inst))

    return [zoom(c) for c in data]


def data_source(cfg: SegmentConfig) -> str:
    return SOURCES.get(cfg.data) or f"folder:{Path(cfg.data_dir or '.').resolve()}"


def _batches(cfg: SegmentConfig, train: list[CellImage], spec: InputSpec, steps: int):
    def batches(epoch: int, rng: np.random.Generator):
        order = rng.permutation(len(train))
        for i in range(steps):
            xs, ys, ws, ds = [], [], [], []
            for j in order[i * cfg.batch_size : (i + 1) * cfg.batch_size]:
                image, inst = augment_cells(train[j].image, train[j].instances, rng, cfg.elastic, cfg.zoom)
                classes = classes_from_instances(inst, cfg.outline, cfg.contact_px)
                xs.append(image)
                ys.append(classes.astype(np.int64))
                ds.append(edge_distance(inst) if cfg.distance else np.zeros(0, np.float32))
                if cfg.loss == "weighted":
                    ws.append(unet_weight_map(classes, inst, len(CLASSES), cfg.w0, cfg.sigma, cfg.contact_weight))
                else:
                    ws.append(np.ones(classes.shape, np.float32))
            x = torch.from_numpy(preprocess(xs, spec))  # (B, 1, H, W), percentile-normalised per image
            yield x, (torch.from_numpy(np.stack(ys)), torch.from_numpy(np.stack(ws)), torch.from_numpy(np.stack(ds)))

    return batches


def weighted_ce(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Pixel-wise cross entropy weighted by the U-Net weight map (normalised by the weights' sum)."""
    ce = F.cross_entropy(logits, target, reduction="none")  # (B, H, W)
    return (ce * weights).sum() / weights.sum()


def segmenter_loss(distance: float):
    """The weighted cross entropy on the class channels, plus (``distance`` > 0) that weight times the binary
    cross entropy of the last channel against each cell's normalised distance to its edge."""

    def loss(model: torch.nn.Module, x: torch.Tensor, target: tuple[torch.Tensor, ...]) -> torch.Tensor:
        logits = model(x)
        classes, weights, dist = target
        if not distance:
            return weighted_ce(logits, classes, weights)
        ce = weighted_ce(logits[:, : len(CLASSES)], classes, weights)
        return ce + distance * F.binary_cross_entropy_with_logits(logits[:, len(CLASSES)], dist)

    return loss


def output_spec(cfg: SegmentConfig, train: list[CellImage], instances: str = "components") -> OutputSpec:
    """Classes, instance method and the object sizes trained on: per training image the median
    equivalent diameter of its cells; the card keeps the median of those and their 5-95 % range
    (per image, not pooled over cells: crowded images of small cells would swamp a pooled median)."""
    d = np.array([np.median(equivalent_diameters(c.instances)) for c in train if c.instances.max() > 0])
    return OutputSpec(
        name="logits",
        kind="class_scores",
        shape=[len(CLASSES) + (1 if cfg.distance else 0), "any", "any"],
        postprocess="argmax",
        object_class=1,
        border_class=2,
        min_object_size=cfg.min_size,
        instances=instances,
        diameter_px=round(float(np.median(d)), 2),
        diameter_range=(round(float(np.percentile(d, 5)), 2), round(float(np.percentile(d, 95)), 2)),
        distance_channel=len(CLASSES) if cfg.distance else None,
    )


def train_segmenter(
    cfg: SegmentConfig,
    run: Run = Run(),
) -> dict:
    """Train on the shared loop (best validation object F1), score every held-out set with both
    instance methods, keep the better method (by validation), write reports, optionally export."""
    device = pick_device(cfg.device)
    data = splits(cfg)
    spec = input_spec(cfg)
    out = output_spec(cfg, data["train"], "distance" if cfg.distance else "components")
    model = UNet(in_channels=1, num_classes=len(CLASSES) + (1 if cfg.distance else 0), base=cfg.base, depth=cfg.depth)
    steps = -(-len(data["train"]) // cfg.batch_size)
    steps = min(steps, cfg.max_batches) if cfg.max_batches else steps
    val_images, val_truth = [c.image for c in data["val"]], [c.instances for c in data["val"]]

    def validate(m: torch.nn.Module) -> tuple[float, float]:
        f1 = object_f1(segment_all(torch_logits(m, device), val_images, spec, out), val_truth)["f1"]
        return f1, -f1

    loop = LoopConfig(cfg.epochs, cfg.lr, 1e-4, cfg.patience, cfg.ema, cfg.seed, cfg.device)
    saved = {"model_args": model.config, "input_spec": spec.model_dump()}
    fr, out_dir = fit_task(
        model, cfg, cfg.name, loop, steps, _batches(cfg, data["train"], spec, steps),
        segmenter_loss(cfg.distance), validate, saved, run,
    )  # fmt: skip
    logits_of = torch_logits(model, device)
    out = choose_core(logits_of, data["val"], spec, out)
    val = score_sets(logits_of, {"val": data["val"]}, spec, out)["val"]
    out = out.model_copy(update={"instances": max(methods(out), key=lambda m: val[m]["f1"])})
    from training.seg_calibrate import choose, markdown  # which cell sizes stay at their own size: on validation

    out, table = choose(logits_of, cfg, spec, out)
    (out_dir / "diameter_native.md").write_text(markdown(table, out.diameter_native) if table else "")
    sets = held_out_sets(cfg, data)
    scores = score_sets(logits_of, sets, spec, out)
    for name, panel in (("own", "panel.png"), ("cross", "panel_cross.png")):
        if name in sets:
            ours = segment_all(logits_of, [c.image for c in sets[name]], spec, out)
            base = [baseline_instances(c.image, cfg.min_size) for c in sets[name]]
            plot_panel(sets[name], ours, base, out_dir / panel)
    report = {"instances": out.instances, "val": val, "scores": scores, "best_epoch": fr.best_epoch}
    (out_dir / "test_report.json").write_text(json.dumps(report | {"train_seconds": fr.train_seconds}, indent=2) + "\n")
    (out_dir / "history.json").write_text(json.dumps(fr.history, indent=2) + "\n")
    result = {
        "name": cfg.name,
        "object_f1": scores["own"][out.instances]["f1"],
        "baseline_object_f1": scores["own"]["baseline"]["f1"],
        "instances": out.instances,
        "scores": scores,
        "history": fr.history,
        "out_dir": str(out_dir),
        "panel": str(out_dir / "panel.png"),
    }
    if run.export_to is not None:
        card = _export(cfg, model, spec, out, data, scores, fr, run.export_to, run.version, run.overwrite)
        result["exported"] = str(run.export_to / card.name)
    return result


def _export(cfg, model, spec, out, data, scores, fr, export_to, version, overwrite):
    model = model.cpu()
    metrics = card_metrics(scores, out.instances)
    card_fields = CardDraft(
        name=cfg.name,
        task="segmentation",
        description="U-Net for fluorescence cells: background / cell / border-between-cells; instances by "
        f"{out.instances} from the class probabilities; images rescaled to the trained cell size. "
        "Baseline: Otsu + distance-transform watershed.",
        architecture=Architecture(
            name="unet",
            family="unet",
            preset="any-size",
            kwargs={"base": cfg.base, "depth": cfg.depth},
            num_parameters=sum(p.numel() for p in model.parameters()),
        ),
        input=spec,
        output=out,
        labels=CLASSES,
        training=DataProvenance(
            source=data_source(cfg),
            description=f"{cfg.size}x{cfg.size} 8/16-bit generated images; held out: own test split, "
            "the first generator (training/data/cells.py) and an independent generator (training/data/cells_alt.py)"
            if cfg.data in GENERATORS
            else "image/mask pairs",
            split={},
            sizes={k: len(v) for k, v in data.items()},
            seed=cfg.seed,
            augmentation={"elastic": cfg.elastic, "rot90": True, "flip": True},
        ),
        hyperparameters=asdict(cfg)
        | {
            "loss_detail": "weighted cross entropy (U-Net weight map)" if cfg.loss == "weighted" else "cross entropy",
            "best_epoch": fr.best_epoch,
            "epochs_run": fr.epochs_run,
            "train_seconds": round(fr.train_seconds),
            # a warm start (--init-from): what the committed model had been trained for, counted apart
            "initialised_from": fr.initialised_from,
            "total_train_seconds": round(fr.train_seconds + ((fr.initialised_from or {}).get("train_seconds") or 0)),
        },
        metrics=metrics,
        headline_metric="cross_object_f1" if "cross_object_f1" in metrics else "object_f1",
    )
    real = preprocess([c.image for c in data["test"][:2]], spec)
    odd = preprocess([data["test"][-1].image[:97, :75]], spec)  # a second, odd size
    return export_to_repository(
        model, card_fields, export_to, real, version=version, overwrite=overwrite,
        max_batch_size=8, dynamic_spatial=True, extra_inputs=[odd],
    )  # fmt: skip
