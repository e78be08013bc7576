"""Segmentation: decode (16-bit aware) -> predict (tiled for large images) -> instances -> encode."""

from __future__ import annotations

import base64
import csv
import io

import numpy as np
from PIL import Image

from modelrepo.card import InputSpec, ModelCard
from modelrepo.cellseg import BRIGHT, Segmentation, segment
from modelrepo.errors import InputError, plain
from modelrepo.preprocess import TIFF_MAGIC
from modelrepo.segmentation import measure
from service.batcher import Timing
from service.images import DECODE_ERRORS, deep_png, open_image, tiff_file
from service.registry import ModelState
from service.tasks import channels

PALETTE = [(0, 0, 0), (46, 204, 113), (231, 76, 60), (52, 152, 219), (241, 196, 15)]  # per class


def decode(data: bytes, max_pixels: int, channel: str | None = None) -> tuple[np.ndarray, list[str]]:
    """Bytes -> raw intensities (H, W) in the file's own units (16-bit stays 16-bit) of the chosen channel
    (``service/tasks/channels.py``), and warnings about the choice; 413/422 otherwise."""
    if data[:4] in TIFF_MAGIC:
        with tiff_file(data, max_pixels) as tf:
            return channels.pick(channels.tiff_planes(tf), channel)
    if (deep := deep_png(data, max_pixels)) is not None:
        return channels.pick(channels.array_planes(deep[..., :1] if deep.shape[2] == 2 else deep), channel)  # LA: L
    img = open_image(data, max_pixels)
    try:
        return channels.pick(channels.pil_planes(img), channel)
    except InputError:
        raise
    except DECODE_ERRORS as exc:
        raise InputError("undecodable_image", f"image 0 cannot be decoded: {plain(exc)}") from None


BRIGHT_START = BRIGHT.split("{")[0]  # modelrepo.cellseg's "mostly bright" warning
INVERT_HINT = "for dark cells on a bright background (brightfield, histology), send invert=true"


def hint_invert(warnings: list[str], invert: bool) -> None:
    """After "mostly bright", say how to send dark cells on a bright background."""
    if not invert and any(w.startswith(BRIGHT_START) for w in warnings):
        warnings.append(INVERT_HINT)


def inverted(raw: np.ndarray) -> np.ndarray:
    """Dark cells on a bright background turned into bright cells on a dark one, in the image's own range."""
    return (np.float32(raw.max()) + np.float32(raw.min()) - raw).astype(np.float32)


async def predict(
    state: ModelState,
    raw: np.ndarray,
    spec: InputSpec,
    timeout_s: float,
    tile: int,
    overlap: int,
    diameter: float | None,
    min_size: int | None,
) -> tuple[Segmentation, Timing]:
    """The shared pipeline (``modelrepo/cellseg.py``) with the model's batcher as the network: tiles go
    max-batch at a time; timings add up over every call."""
    assert state.batcher is not None and state.card is not None
    totals = [0.0, 0.0, 0]

    async def infer(x: np.ndarray) -> np.ndarray:
        logits, t = await state.batcher.infer(x, timeout_s)
        totals[0], totals[1], totals[2] = totals[0] + t.queue_s, totals[1] + t.inference_s, max(totals[2], t.batch_rows)
        return logits

    seg = await segment(
        infer, raw, spec, state.card.output, diameter, min_size, tile, overlap, state.batcher.max_batch_size
    )
    return seg, Timing(totals[0], totals[1], int(totals[2]))


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
