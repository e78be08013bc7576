"""Scoring a segmenter the way it is served: instances through ``modelrepo.cellseg``, object F1 per held-out set for
every instance method, the classical baseline, the true diameter given; the core threshold of a distance channel;
the panel and the card's flat metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import torch

from modelrepo.card import InputSpec, OutputSpec
from modelrepo.cellseg import segment
from modelrepo.segmentation import equivalent_diameters
from training.data.cells import CellImage
from training.evaluate import save_figure
from training.seg_metrics import object_f1

METHODS = ("components", "watershed")
DISTANCE_CORES = (0.3, 0.4, 0.5, 0.6, 0.7)  # where a distance-channel model's cell cores begin: chosen on validation


def methods(out: OutputSpec) -> tuple[str, ...]:
    return (*METHODS, "distance") if out.distance_channel is not None else METHODS


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


def segment_all(
    logits_of, images: list[np.ndarray], spec: InputSpec, out: OutputSpec, diameters: list[float | None] | None = None
) -> list[np.ndarray]:
    """Instances for each image through the served pipeline (``modelrepo/cellseg.py``): whole-image
    percentiles, diameter estimate (or the given one, as ``diameter=``) and rescale, the card's instance method."""
    given = diameters or [None] * len(images)

    async def infer(x: np.ndarray) -> np.ndarray:
        return logits_of(x)

    async def run() -> list[np.ndarray]:
        return [(await segment(infer, im.astype(np.float32), spec, out, d)).instances for im, d in zip(images, given)]

    return asyncio.run(run())


def torch_logits(model: torch.nn.Module, device: torch.device):
    @torch.no_grad()
    def logits_of(x: np.ndarray) -> np.ndarray:
        model.eval()
        return model(torch.from_numpy(x).to(device)).cpu().numpy()

    return logits_of


def score_sets(logits_of, sets: dict[str, list[CellImage]], spec: InputSpec, out: OutputSpec) -> dict:
    """Object F1 / precision / recall per held-out set: both instance methods, the baseline, and the served
    method given each image's true median cell diameter (``given_diameter``, as `diameter=` on /segment)."""
    scores = {}
    for name, data in sets.items():
        truth = [c.instances for c in data]
        row = {
            m: object_f1(
                segment_all(logits_of, [c.image for c in data], spec, out.model_copy(update={"instances": m})), truth
            )
            for m in methods(out)
        }
        row["baseline"] = object_f1([baseline_instances(c.image, out.min_object_size) for c in data], truth)
        given = segment_all(logits_of, [c.image for c in data], spec, out, true_d(data))
        row["given_diameter"] = object_f1(given, truth)
        scores[name] = row
    return scores


def true_d(data: list[CellImage]) -> list[float | None]:
    """Each image's median cell diameter from its truth (what a user who knows the cells would pass)."""
    return [float(np.median(equivalent_diameters(c.instances))) if c.instances.max() else None for c in data]


def choose_core(logits_of, val: list[CellImage], spec: InputSpec, out: OutputSpec) -> OutputSpec:
    """A distance-channel model: the core threshold (``distance_core``) with the best validation object F1."""
    if out.distance_channel is None:
        return out
    truth = [c.instances for c in val]

    def f1(core: float) -> float:
        o = out.model_copy(update={"instances": "distance", "distance_core": core})
        return object_f1(segment_all(logits_of, [c.image for c in val], spec, o), truth)["f1"]

    scores = {core: f1(core) for core in DISTANCE_CORES}
    print("validation object F1 by distance core: " + ", ".join(f"{k:g}: {v:.3f}" for k, v in scores.items()))
    return out.model_copy(update={"distance_core": max(scores, key=scores.get)})


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
    save_figure(fig, path, dpi=90)


def card_metrics(scores: dict, method: str) -> dict[str, float]:
    """Flat card metrics: ``object_f1`` etc. for the own set, ``<set>_object_f1`` for the others, the
    baseline's, and both instance methods' F1 (the one served is ``method``)."""
    metrics = {}
    for name, row in scores.items():
        prefix = "" if name == "own" else f"{name}_"
        metrics |= {f"{prefix}object_{k}": round(row[method][k], 4) for k in ("f1", "precision", "recall")}
        metrics[f"{prefix}baseline_object_f1"] = round(row["baseline"]["f1"], 4)
        metrics |= {f"{prefix}object_f1_{m}": round(row[m]["f1"], 4) for m in row if m != "baseline"}
    return metrics
