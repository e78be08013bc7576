"""Training the segmentation U-Net with the paper's weight map; evaluation against a classical baseline."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from modelrepo.card import Architecture, DataProvenance, InputSpec, OutputSpec
from modelrepo.preprocess import preprocess
from modelrepo.segmentation import instances_from_classes
from training.classify import pick_device
from training.data.cells import CLASSES, CellImage, elastic_deform, make_cell_dataset
from training.export import export_to_repository
from training.nets.unet import UNet
from training.seg_metrics import object_f1, pixel_scores
from training.weight_map import unet_weight_map

DATA_SOURCE = "training.data.cells (synthetic fluorescence-like touching cells)"


@dataclass
class SegmentConfig:
    name: str = "unet_cells"
    data: str = "cells"  # cells (generated) | folder (image/mask pairs, see training/data/mask_folder.py)
    data_dir: str | None = None
    mask_kind: str = "auto"  # folder masks: auto | classes | instances
    n_train: int = 96
    n_val: int = 16
    n_test: int = 24
    size: int = 128
    base: int = 16
    depth: int = 4
    epochs: int = 25
    batch_size: int = 8
    lr: float = 2e-3
    w0: float = 10.0
    sigma: float = 5.0
    elastic: bool = True
    min_size: int = 20
    pmin: float = 1.0
    pmax: float = 99.8
    seed: int = 0
    device: str = "auto"
    out: str = "runs"
    max_batches: int | None = None


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


def splits(cfg: SegmentConfig) -> dict[str, list[CellImage]]:
    """Generated cells: three disjoint sets, each with its own seed derived from cfg.seed. Or a user folder."""
    if cfg.data == "folder":
        from training.data.mask_folder import load_mask_folder

        if not cfg.data_dir:
            raise ValueError("--data folder needs --data-dir")
        return load_mask_folder(cfg.data_dir, seed=cfg.seed, kind=cfg.mask_kind)
    if cfg.data != "cells":
        raise ValueError(f"unknown dataset {cfg.data!r} (cells | folder)")
    sizes = [("train", cfg.n_train), ("val", cfg.n_val), ("test", cfg.n_test)]
    return {name: make_cell_dataset(n, seed=cfg.seed * 1000 + k, size=cfg.size) for k, (name, n) in enumerate(sizes)}


def data_source(cfg: SegmentConfig) -> str:
    return DATA_SOURCE if cfg.data == "cells" else f"folder:{Path(cfg.data_dir or '.').resolve()}"


def _augment(c: CellImage, rng: np.random.Generator, elastic: bool) -> tuple[np.ndarray, np.ndarray]:
    image, inst = c.image, c.instances
    if elastic and rng.random() < 0.7:
        image, inst = elastic_deform(image, inst, rng)
    k = int(rng.integers(4))
    image, inst = np.rot90(image, k), np.rot90(inst, k)
    if rng.random() < 0.5:
        image, inst = image[:, ::-1], inst[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(inst)


def _batch(items: list[CellImage], spec: InputSpec, rng, cfg: SegmentConfig, augment: bool):
    from training.data.cells import classes_from_instances

    xs, ys, ws = [], [], []
    for c in items:
        image, inst = _augment(c, rng, cfg.elastic) if augment else (c.image, c.instances)
        classes = classes_from_instances(inst) if augment else c.classes
        xs.append(image)
        ys.append(classes.astype(np.int64))
        ws.append(unet_weight_map(classes, inst, len(CLASSES), cfg.w0, cfg.sigma))
    x = torch.from_numpy(preprocess(xs, spec))  # (B, 1, H, W), percentile-normalised per image
    return x, torch.from_numpy(np.stack(ys)), torch.from_numpy(np.stack(ws))


def weighted_ce(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Pixel-wise cross entropy weighted by the U-Net weight map (normalised by the weights' sum)."""
    ce = F.cross_entropy(logits, target, reduction="none")  # (B, H, W)
    return (ce * weights).sum() / weights.sum()


@torch.no_grad()
def predict_classes(model: torch.nn.Module, images: list[np.ndarray], spec: InputSpec, device) -> list[np.ndarray]:
    model.eval()
    return [model(torch.from_numpy(preprocess([im], spec)).to(device)).argmax(1)[0].cpu().numpy() for im in images]


def baseline_instances(image: np.ndarray, min_size: int = 20) -> np.ndarray:
    """Otsu threshold + distance-transform watershed (scikit-image), the classical recipe."""
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.segmentation import watershed

    from modelrepo.segmentation import relabel

    smooth = gaussian(image.astype(np.float64), sigma=1.0)
    mask = smooth > threshold_otsu(smooth)
    dist = ndi.distance_transform_edt(mask)
    peaks = peak_local_max(dist, min_distance=5, labels=ndi.label(mask)[0], exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return relabel(watershed(-dist, markers, mask=mask), min_size)


def evaluate(model, data: list[CellImage], spec: InputSpec, device, min_size: int) -> dict:
    classes = predict_classes(model, [c.image for c in data], spec, device)
    preds = [instances_from_classes(k, 1, 2, min_size) for k in classes]
    truth = [c.instances for c in data]
    pix = pixel_scores(np.stack(classes), np.stack([c.classes for c in data]), CLASSES)
    return {"objects": object_f1(preds, truth), "pixels": pix, "_instances": preds}


def plot_panel(data: list[CellImage], ours: list[np.ndarray], base: list[np.ndarray], path: Path, n: int = 3) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.color import label2rgb

    n = min(n, len(data))
    fig, axes = plt.subplots(n, 4, figsize=(12, 3 * n), squeeze=False)
    for r in range(n):
        c = data[r]
        shown = [(c.image, "image (16-bit)"), (c.instances, "truth"), (ours[r], "U-Net"), (base[r], "Otsu + watershed")]
        for ax, (im, title) in zip(axes[r], shown):
            ax.imshow(im if title.startswith("image") else label2rgb(im, bg_label=0), cmap="gray")
            ax.set_title(f"{title}" + ("" if title.startswith("image") else f" ({int(im.max())} objects)"), fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def train_segmenter(
    cfg: SegmentConfig,
    export_to: Path | None = None,
    version: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = pick_device(cfg.device)
    data = splits(cfg)
    spec = input_spec(cfg)
    model = UNet(in_channels=1, num_classes=len(CLASSES), base=cfg.base, depth=cfg.depth).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = -(-len(data["train"]) // cfg.batch_size)
    if cfg.max_batches:
        steps = min(steps, cfg.max_batches)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    out_dir = Path(cfg.out) / cfg.name
    out_dir.mkdir(parents=True, exist_ok=True)
    best, history, t0 = {"f1": -1.0, "epoch": -1}, [], time.time()
    bar = tqdm(range(cfg.epochs), desc=cfg.name, disable=not progress, unit="epoch")
    for epoch in bar:
        model.train()
        order = rng.permutation(len(data["train"]))
        losses = []
        for i in range(steps):
            items = [data["train"][j] for j in order[i * cfg.batch_size : (i + 1) * cfg.batch_size]]
            x, y, w = _batch(items, spec, rng, cfg, augment=True)
            loss = weighted_ce(model(x.to(device)), y.to(device), w.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        val = evaluate(model, data["val"], spec, device, cfg.min_size)["objects"]["f1"]
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_object_f1": val})
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", val_f1=f"{val:.3f}")
        if val > best["f1"]:
            best = {"f1": val, "epoch": epoch}
            torch.save(
                {
                    "model_args": model.config,
                    "config": asdict(cfg),
                    "state_dict": model.state_dict(),
                    "input_spec": spec.model_dump(),
                    "epoch": epoch,
                },
                out_dir / "checkpoint.pt",
            )
    bar.close()
    train_seconds = time.time() - t0
    model.load_state_dict(torch.load(out_dir / "checkpoint.pt", map_location=device)["state_dict"])

    test = evaluate(model, data["test"], spec, device, cfg.min_size)
    base = [baseline_instances(c.image, cfg.min_size) for c in data["test"]]
    base_objects = object_f1(base, [c.instances for c in data["test"]])
    plot_panel(data["test"], test["_instances"], base, out_dir / "panel.png")
    report = {
        "unet": {"objects": test["objects"], "pixels": test["pixels"]},
        "baseline": {"objects": base_objects},
        "best": best,
        "train_seconds": round(train_seconds, 1),
    }
    (out_dir / "test_report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    result = {
        "name": cfg.name,
        "object_f1": test["objects"]["f1"],
        "baseline_object_f1": base_objects["f1"],
        "history": history,
        "out_dir": str(out_dir),
        "panel": str(out_dir / "panel.png"),
    }

    if export_to is not None:
        model = model.cpu()
        metrics = {
            "object_f1": round(test["objects"]["f1"], 4),
            "object_precision": round(test["objects"]["precision"], 4),
            "object_recall": round(test["objects"]["recall"], 4),
            "baseline_object_f1": round(base_objects["f1"], 4),
        } | {f"{m}_{k}": round(v[m], 4) for k, v in test["pixels"].items() for m in ("iou", "dice")}
        card_fields = dict(
            name=cfg.name,
            task="segmentation",
            description="U-Net for touching cells: background / cell / border-between-cells; instances by "
            "connected components of cells grown into their borders. Baseline: Otsu + distance-transform watershed.",
            architecture=Architecture(
                name="unet",
                family="unet",
                preset="any-size",
                kwargs={"base": cfg.base, "depth": cfg.depth},
                num_parameters=sum(p.numel() for p in model.parameters()),
            ),
            input=spec,
            output=OutputSpec(
                name="logits",
                kind="class_scores",
                shape=[len(CLASSES), "any", "any"],
                postprocess="argmax",
                object_class=1,
                border_class=2,
                min_object_size=cfg.min_size,
            ),
            labels=CLASSES,
            training=DataProvenance(
                source=data_source(cfg),
                description=f"{cfg.size}x{cfg.size} 16-bit images" if cfg.data == "cells" else "image/mask pairs",
                split={},
                sizes={k: len(v) for k, v in data.items()},
                seed=cfg.seed,
                augmentation={"elastic": cfg.elastic, "rot90": True, "flip": True},
            ),
            hyperparameters=asdict(cfg)
            | {
                "loss": "weighted cross entropy (U-Net weight map)",
                "best_epoch": best["epoch"],
                "train_seconds": round(train_seconds),
            },
            metrics=metrics,
        )
        real = preprocess([c.image for c in data["test"][:2]], spec)
        odd = preprocess([data["test"][-1].image[:97, :75]], spec)  # a second, odd size
        card = export_to_repository(
            model,
            card_fields,
            export_to,
            real,
            version=version,
            overwrite=overwrite,
            max_batch_size=8,
            dynamic_spatial=True,
            extra_inputs=[odd],
        )
        result["exported"] = str(export_to / card.name)
    return result
