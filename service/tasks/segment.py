"""Segmentation: decode (16-bit aware) -> predict (tiled for large images) -> instances -> encode."""

from __future__ import annotations

import base64
import csv
import io

import numpy as np
from PIL import Image

from modelrepo.card import InputSpec, ModelCard
from modelrepo.preprocess import intensities, normalize_percentile, pad_to_multiple
from modelrepo.segmentation import instances_from_classes, measure
from service.batcher import Timing
from service.registry import ModelState
from service.tiles import tile_origins

PALETTE = [(0, 0, 0), (46, 204, 113), (231, 76, 60), (52, 152, 219), (241, 196, 15)]  # per class


def decode(img: Image.Image, spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """-> (raw intensities (H, W) in the file's own units, normalised network input (H, W, 1)).

    The percentiles are taken over the whole image, before any tiling."""
    raw = intensities(img)
    return raw, normalize_percentile(raw, spec)


async def predict(
    state: ModelState, x: np.ndarray, timeout_s: float, tile: int, overlap: int
) -> tuple[np.ndarray, Timing]:
    """Class map (H, W) for the normalised image x (H, W, 1).

    The image is padded (mirrored) to the network's multiple and the result cropped back. Images
    larger than ``tile`` run as overlapping tiles, max-batch tiles at a time, each contributing its
    centre, so memory stays bounded whatever the image size."""
    assert state.batcher is not None and state.card is not None
    h, w = x.shape[:2]
    m = state.card.input.pad_multiple
    chw = pad_to_multiple(x.transpose(2, 0, 1), m)
    H, W = chw.shape[1:]  # padded sizes
    tile = max(m, tile - tile % m)  # tiles keep the network's multiple too
    if H <= tile and W <= tile:
        logits, timing = await state.batcher.infer(np.ascontiguousarray(chw[None]), timeout_s)
        return logits[0, :, :h, :w].argmax(0).astype(np.uint8), timing
    th, tw = min(tile, H), min(tile, W)
    step = tile - 2 * overlap  # each tile keeps its centre: neighbours must share 2 x overlap
    boxes = [(y, x0) for y in tile_origins(H, th, step) for x0 in tile_origins(W, tw, step)]
    out = np.zeros((H, W), np.uint8)
    queue_s = infer_s = 0.0
    rows = 0
    group = max(1, getattr(state.batcher, "max_batch_size", 8))
    for i in range(0, len(boxes), group):
        chunk = boxes[i : i + group]
        tiles = np.stack([chw[:, y : y + th, x0 : x0 + tw] for y, x0 in chunk])  # (n, 1, th, tw)
        logits, timing = await state.batcher.infer(tiles, timeout_s)
        queue_s, infer_s, rows = queue_s + timing.queue_s, infer_s + timing.inference_s, max(rows, timing.batch_rows)
        for (y, x0), lg in zip(chunk, logits):
            cls = lg.argmax(0).astype(np.uint8)
            # keep the tile's centre: drop `overlap` px on every side that is not an image edge
            top = 0 if y == 0 else overlap
            left = 0 if x0 == 0 else overlap
            bottom = th if y + th == H else th - overlap
            right = tw if x0 + tw == W else tw - overlap
            out[y + top : y + bottom, x0 + left : x0 + right] = cls[top:bottom, left:right]
    return out[:h, :w], Timing(queue_s, infer_s, rows)


def objects(classes: np.ndarray, card: ModelCard, min_size: int | None) -> np.ndarray:
    out = card.output
    size = out.min_object_size if min_size is None else min_size
    return instances_from_classes(classes, out.object_class or 1, out.border_class, size)


def measure_objects(instances: np.ndarray, raw: np.ndarray) -> list[dict]:
    """Per object: label, area, centroid, bbox and mean intensity in the file's own units."""
    return measure(instances, raw)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def class_png(classes: np.ndarray, card: ModelCard) -> bytes:
    """The class mask as an indexed-colour PNG: pixel value = class id, palette from PALETTE."""
    img = Image.fromarray(classes, mode="L").convert("P")
    pal = [c for rgb in PALETTE[: len(card.labels or [])] for c in rgb]
    img.putpalette(pal + [0] * (768 - len(pal)))
    return _png(img)


def labels_tiff(instances: np.ndarray) -> bytes:
    """Instance labels as TIFF: background 0, objects 1..N; uint16 up to 65,535 objects, else uint32."""
    import tifffile

    dtype = np.uint16 if instances.max() < 65536 else np.uint32
    buf = io.BytesIO()
    tifffile.imwrite(buf, instances.astype(dtype), photometric="minisblack")
    return buf.getvalue()


def objects_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["label", "area", "centroid_x", "centroid_y", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "mean_intensity"]
    )
    for r in rows:
        w.writerow([r["label"], r["area"], r["centroid_x"], r["centroid_y"], *r["bbox"], r["mean_intensity"]])
    return buf.getvalue()


def overlay_png(raw: np.ndarray, instances: np.ndarray, spec: InputSpec) -> bytes:
    """The image (percentile-stretched to 8 bits for display) with each object's contour in its own colour."""
    lo, hi = np.percentile(raw, spec.percentiles)
    gray = (np.clip((raw - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    padded = np.pad(instances, 1, mode="edge")
    h, w = instances.shape
    edge = np.zeros((h, w), bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        edge |= padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] != instances
    edge &= instances > 0
    colours = np.random.default_rng(0).integers(64, 256, (int(instances.max()) + 1, 3)).astype(np.uint8)
    rgb[edge] = colours[instances[edge]]
    return _png(Image.fromarray(rgb))


def summary(classes: np.ndarray, instances: np.ndarray, rows: list[dict], card: ModelCard) -> dict:
    counts = np.bincount(classes.ravel(), minlength=len(card.labels or []))
    total = classes.size
    return {
        "width": int(classes.shape[1]),
        "height": int(classes.shape[0]),
        "classes": [
            {"index": i, "label": lab, "pixels": int(counts[i]), "fraction": round(float(counts[i]) / total, 6)}
            for i, lab in enumerate(card.labels or [])
        ],
        "num_objects": int(instances.max()),
        "objects": rows,
        "mask_png": base64.b64encode(class_png(classes, card)).decode("ascii"),
    }
