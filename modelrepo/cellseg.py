"""Segmenting one image end to end, as the service, training's evaluation and ``make eval`` all do it:

normalise (percentiles of the whole image) -> [rescale cells outside the sizes segmented natively] ->
class probabilities (padded to the network's multiple; large images in overlapping tiles, each
contributing its centre; with a self-ensemble, ``modelrepo.ensemble``) -> [back to the input grid] ->
instances (the card's method) -> warnings.

``infer`` is any coroutine from a float32 batch (N, 1, h, w) to logits (N, C, h, w): the service
passes its dynamic batcher, evaluation an ONNX Runtime session. No framework here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from modelrepo.annotations import MIN_PIXELS, burnt_in, painted_over
from modelrepo.card import InputSpec, OutputSpec
from modelrepo.ensemble import ensembled
from modelrepo.errors import InputError
from modelrepo.preprocess import normalize_percentile, pad_to_multiple
from modelrepo.segmentation import activate, equivalent_diameters, instances_from_probabilities
from modelrepo.tiles import tile_origins

Infer = Callable[[np.ndarray], Awaitable[np.ndarray]]

MOSTLY_CELL = "most of the image was classed as cell: it may not be fluorescence cells on a dark background"
UNSURE = "the model is unsure about {f:.0%} of the pixels (confidence below 0.7): it may not be fluorescence cells"
BRIGHT = "the image is mostly bright (median at {m:.0%} of its range): fluorescence cells sit on a dark background"
ANNOTATED = (
    "{n} burnt-in mark(s) at the image's white ({px} px: a scale bar, a label?) were taken for annotations and "
    "filled in from the image around them"
)
SIZE_OUTSIDE = (
    "objects are far outside the sizes this model was trained on (diameter {d:.0f} px, trained {lo:.0f}-{hi:.0f})"
)


@dataclass
class Segmentation:
    classes: np.ndarray  # uint8 (H, W)
    instances: np.ndarray  # int32 (H, W)
    diameter_used: float | None = None  # px: given, or estimated from a first pass
    diameter_estimated: bool = False
    scale: float = 1.0  # the image was resized by this before inference
    warnings: list[str] = field(default_factory=list)


async def class_probabilities(
    infer: Infer, x: np.ndarray, multiple: int, tile: int, overlap: int, group: int, classes: int | None = None
) -> np.ndarray:
    """(H, W, 1) normalised image -> (C, H, W) float32 probabilities (``segmentation.activate``: the first
    ``classes`` channels, a distance channel after them)."""
    h, w = x.shape[:2]
    chw = pad_to_multiple(x.transpose(2, 0, 1), multiple)
    H, W = chw.shape[1:]
    tile = max(multiple, tile - tile % multiple)
    if H <= tile and W <= tile:
        return activate((await infer(np.ascontiguousarray(chw[None])))[0, :, :h, :w], classes)
    th, tw = min(tile, H), min(tile, W)
    step = tile - 2 * overlap  # each tile keeps its centre: neighbours share 2 x overlap
    boxes = [(y, x0) for y in tile_origins(H, th, step) for x0 in tile_origins(W, tw, step)]
    out: np.ndarray | None = None
    for i in range(0, len(boxes), max(1, group)):
        chunk = boxes[i : i + group]
        logits = await infer(np.stack([chw[:, y : y + th, x0 : x0 + tw] for y, x0 in chunk]))
        if out is None:
            out = np.zeros((logits.shape[1], H, W), np.float32)
        for (y, x0), lg in zip(chunk, logits):
            top, left = (0 if y == 0 else overlap), (0 if x0 == 0 else overlap)
            bottom = th if y + th == H else th - overlap
            right = tw if x0 + tw == W else tw - overlap
            out[:, y + top : y + bottom, x0 + left : x0 + right] = activate(lg, classes)[:, top:bottom, left:right]
    assert out is not None
    return out[:, :h, :w]


def _resize(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of the last two axes to ``shape``; shrinking first blurs (Gaussian, sigma (1/zoom - 1) / 2
    px per axis) so that the samples average what they stand for instead of aliasing noise."""
    zoom = (1,) * (a.ndim - 2) + (shape[0] / a.shape[-2], shape[1] / a.shape[-1])
    sigma = [max(0.0, (1 / z - 1) / 2) for z in zoom]
    if any(sigma):
        a = ndi.gaussian_filter(a, sigma, mode="nearest")
    out = ndi.zoom(a, zoom, order=1, mode="nearest", grid_mode=True)
    return out[..., : shape[0], : shape[1]]


def median_diameter(instances: np.ndarray) -> float | None:
    d = equivalent_diameters(instances)
    return float(np.median(d)) if d.size else None


SCALE_RANGE = (1 / 16, 8.0)  # how far an image may be rescaled to bring its cells to the trained size
MAX_RESCALED_PIXELS = 64_000_000
CANDIDATE_SCALES = (1.0, 0.5, 0.25, 0.125)  # tried for the first pass when no diameter is given
MIN_SEARCH_SIDE = 32  # px: a candidate scale may not make the image smaller than this
SCALE_MARGIN = 0.03  # a smaller scale wins only when this much surer (chosen on the validation split)
CONFIDENT = 0.7


def checked_scale(scale: float, h: int, w: int, what: str) -> float:
    """The rescale factor, if it is within ``SCALE_RANGE`` and leaves an image of at most
    ``MAX_RESCALED_PIXELS``; InputError otherwise (a tiny ``diameter`` would ask for a terapixel image)."""
    lo, hi = SCALE_RANGE
    if not lo <= scale <= hi:
        raise InputError(
            "diameter_out_of_range",
            f"{what} would rescale the image by {scale:.3g}x; this model allows {lo:g}-{hi:g}x "
            f"(cell diameters {1 / hi:g}-{1 / lo:g} times its trained size)",
        )
    if h * w * scale * scale > MAX_RESCALED_PIXELS:
        raise InputError(
            "image_too_large",
            f"{what} would rescale this {w}x{h} image to {round(w * scale)}x{round(h * scale)} pixels "
            f"(limit {MAX_RESCALED_PIXELS:,})",
        )
    return scale


async def segment(
    infer: Infer,
    raw: np.ndarray,
    spec: InputSpec,
    out: OutputSpec,
    diameter: float | None = None,
    min_size: int | None = None,
    tile: int = 512,
    overlap: int = 32,
    group: int = 8,
) -> Segmentation:
    """Classes, instances and what was done, for one image of raw intensities (H, W); the network's logits
    averaged over the spec's self-ensemble of flipped / rotated passes."""
    infer = ensembled(infer, spec.ensemble)
    h, w = raw.shape
    raw, drawn = without_annotations(raw)
    x = normalize_percentile(raw.astype(np.float32), spec)  # the whole image's percentiles
    size = out.min_object_size if min_size is None else min_size
    method = out.instances
    distance = None if out.distance_channel is None else (out.distance_channel, out.distance_core)

    async def at_scale(scale: float, back: bool = True) -> np.ndarray:
        xs = x if scale == 1.0 else _resize(x[..., 0], (max(8, round(h * scale)), max(8, round(w * scale))))[..., None]
        p = await class_probabilities(infer, xs, spec.pad_multiple, tile, overlap, group, out.class_channels)
        return p if scale == 1.0 or not back else _resize(p, (h, w))

    def objects(p: np.ndarray) -> np.ndarray:
        return instances_from_probabilities(p, out.object_class or 1, out.border_class, size, method, distance)

    result = Segmentation(np.zeros((h, w), np.uint8), np.zeros((h, w), np.int32), diameter, warnings=drawn)
    scale = 1.0
    if diameter is not None and out.diameter_px:
        scale = checked_scale(target_scale(diameter, out), h, w, f"diameter {diameter:g} px")
    if diameter is None and out.diameter_px and out.diameter_range:
        scale, probs, inst = await _surest_scale(at_scale, objects, out, h, w)
        found = median_diameter(inst)
        result.diameter_used, result.diameter_estimated = found, found is not None
        lo, hi = out.diameter_range
        lo = out.diameter_native[0] if out.diameter_native else lo  # smaller cells are enlarged to it
        if found is not None and not lo <= found * scale <= hi:  # clipped: an estimate is never refused
            scale = float(np.clip(target_scale(found, out), *SCALE_RANGE))
            scale = checked_scale(scale, h, w, f"the estimated diameter {found:.3g} px")
            probs = await at_scale(scale)
            inst = objects(probs)
    else:
        probs = await at_scale(scale)
        inst = objects(probs)
    result.scale, result.classes, result.instances = scale, probs[: out.class_channels].argmax(0).astype(np.uint8), inst
    _warn(result, out, probs, x)
    return result


def without_annotations(raw: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The image with burnt-in annotations (a scale bar, its label) painted over (``modelrepo.annotations``), and a
    warning saying so when they are more than hot pixels."""
    mask, sizes = burnt_in(raw)
    if not mask.any():
        return raw, []
    shown = [n for n in sizes if n >= MIN_PIXELS]
    note = [ANNOTATED.format(n=len(shown), px=sum(shown))] if shown else []
    return painted_over(raw, mask), note


def target_scale(diameter: float, out: OutputSpec) -> float:
    """The rescale factor for cells of this diameter (px): 1 within the card's ``diameter_native`` (the sizes
    the network segments best at their own size), else the one that brings them to its nearer end; a card
    without it: the one that brings them to ``diameter_px``. (Measured 2026-12-06 on the committed model, own
    generator held out, true diameter given: 0.56 object F1 when every image's cells were brought to the trained
    median - ``diameter=`` until then - and 0.76 now; small cells enlarged 2x carry enlarged noise.)"""
    assert out.diameter_px is not None
    if out.diameter_native is None:
        return out.diameter_px / diameter
    lo, hi = out.diameter_native
    return lo / diameter if diameter < lo else hi / diameter if diameter > hi else 1.0


async def _surest_scale(at_scale, objects, out: OutputSpec, h: int, w: int) -> tuple[float, np.ndarray, np.ndarray]:
    """The first pass when no diameter is given: the image at 1, 1/2, 1/4, ... of its size (down to
    ``MIN_SEARCH_SIDE`` px). Among the scales at which the cells found measure within the trained range,
    those where the network is surest of them (the least foreground it is unsure about, within
    ``SCALE_MARGIN``) are kept, and of these the one whose cells measure closest to the trained diameter
    wins. Cells larger than the network's receptive field come out in fragments at full size - of about
    the trained size, so their median diameter alone cannot say that the image should shrink - and
    unsure; at the scale that brings them near the trained size, confident. No scale in range: 1.
    (scale, probabilities and instances on the input grid)."""
    lo, hi = out.diameter_range or (0.0, float("inf"))
    trained = out.diameter_px or 1.0
    found: list[tuple[float, float, float, np.ndarray]] = []  # (unsure, diameter, scale, probabilities)
    for scale in CANDIDATE_SCALES:
        if scale != 1.0 and min(h, w) * scale < MIN_SEARCH_SIDE:
            break
        p = await at_scale(scale, back=False)
        inst = objects(p)
        d = median_diameter(inst)
        if scale == 1.0:
            first = p, inst  # on the input grid already: kept, not computed again
        if d is not None and lo <= d <= hi:
            found.append((unsure_foreground(p, out), d, scale, p))
    if not found:
        return 1.0, *first
    surest = min(u for u, *_ in found)
    _, _, scale, p = min((f for f in found if f[0] <= surest + SCALE_MARGIN), key=lambda f: abs(np.log(f[1] / trained)))
    if scale == 1.0:
        return 1.0, *first
    p = _resize(p, (h, w))
    return scale, p, objects(p)


def unsure_foreground(probs: np.ndarray, out: OutputSpec) -> float:
    """Share of the pixels classed as cell or border whose top class probability is below 0.7 (1.0 when
    there are none)."""
    fg = probs[out.object_class or 1] + (probs[out.border_class] if out.border_class is not None else 0) > 0.5
    return float((probs[: out.class_channels].max(axis=0)[fg] < CONFIDENT).mean()) if fg.any() else 1.0


def _warn(result: Segmentation, out: OutputSpec, probs: np.ndarray, x: np.ndarray) -> None:
    """Out-of-domain signs (thresholds set on the generated cells and on scikit-image's natural
    images): mostly cell, an unsure network, a bright background, sizes outside the trained range."""
    fg = float((result.classes != 0).mean())
    if fg > 0.85:
        result.warnings.append(MOSTLY_CELL)
    unsure = float((probs[: out.class_channels].max(axis=0) < CONFIDENT).mean())
    if unsure > 0.25:
        result.warnings.append(UNSURE.format(f=unsure))
    median = float(np.median(x))  # the normalised image: 0 at its 1st percentile, 1 at its 99.8th
    if median > 0.4:
        result.warnings.append(BRIGHT.format(m=median))
    if out.diameter_range:
        d = median_diameter(result.instances)
        lo, hi = out.diameter_range
        if d is not None and not 0.5 * lo <= d * result.scale <= 2 * hi:
            result.warnings.append(SIZE_OUTSIDE.format(d=d, lo=lo, hi=hi))
