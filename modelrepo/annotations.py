"""Burnt-in annotations on a microscopy image: a scale bar, its label, an arrow, drawn at the file's white.

Fiji's *Flatten*, a figure exported from a viewer, a screenshot: the scale bar and its "10 um" are pixels of the
image now, at its maximum value. The segmenter took them for cells (about 2.5 false objects per image) and they
stretched the image's percentiles (independent generator with a bar and a label: object F1 0.85 -> 0.79).
``burnt_in`` finds them - regions near the image's maximum that end *abruptly* (two pixels out, the image is
near its background), unlike a bright cell, whose light falls off through its edge, and are shaped as drawn
marks are (strokes at most ``THIN_PX`` from their edge, or long filled rectangles), unlike a cell, a blob - and
``painted_over`` fills them (and the pixel of anti-aliasing around them) in from the image around them.
Measured on the independent generator's 40 held-out images at 8 bits with a bar and a label drawn in: object F1
0.79 -> 0.84 (0.85 without the annotation; cells under it stay hidden).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

BRIGHT = 0.8  # candidate marks: this share of the image's range (1st percentile to maximum) or brighter
ABRUPT = 0.6  # a drawn shape: two pixels out, the image is below its maximum by this share of its range
THIN_PX = 2.0  # pen strokes of a label: no pixel further than this from their edge
MIN_PIXELS = 20  # smaller marks (hot pixels) are painted over too, but not reported


def _drawn(region: np.ndarray) -> bool:
    """``region`` (its bounding box): a stroke (text, an arrow: thin everywhere) or a bar (a filled rectangle,
    3 x as long as wide) - not a cell, which is a blob."""
    if ndi.distance_transform_edt(np.pad(region, 1)).max() <= THIN_PX:
        return True
    h, w = region.shape
    return region.sum() >= 0.95 * h * w and max(h, w) >= 3 * min(h, w)


def burnt_in(raw: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """(H, W) intensities -> (mask of annotation pixels, their marks' sizes): regions at least ``BRIGHT`` of the
    range (anti-aliased text reaches the maximum in few pixels, if any) that end abruptly and are drawn shapes
    (``_drawn``)."""
    top = float(raw.max())
    low = float(np.percentile(raw[:: max(1, raw.shape[0] // 256), :: max(1, raw.shape[1] // 256)], 1))
    if top <= low:
        return np.zeros(raw.shape, bool), []
    labels, _ = ndi.label(raw >= low + BRIGHT * (top - low), structure=np.ones((3, 3)))
    mask, sizes = np.zeros(raw.shape, bool), []
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        box = tuple(slice(max(s.start - 3, 0), s.stop + 3) for s in sl)
        region = labels[box] == i
        ring = ndi.binary_dilation(region, iterations=2) & ~ndi.binary_dilation(region)
        if not ring.any() or top - np.median(raw[box][ring]) < ABRUPT * (top - low):
            continue
        if not _drawn(labels[sl] == i):
            continue
        mask[box] |= region
        sizes.append(int(region.sum()))
    return mask, sizes


def painted_over(raw: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``raw`` with the masked pixels and the one around them (anti-aliasing) filled in from the image around
    them: each takes the mean of the nearest unmarked pixels, smoothed along the fill (a cell under a bar keeps
    its brightness across it, background stays background). Mark by mark, in a box around each."""
    grown = ndi.binary_dilation(mask)
    out = raw.copy()
    labels, _ = ndi.label(grown, structure=np.ones((3, 3)))
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        box = tuple(slice(max(s.start - 4, 0), s.stop + 4) for s in sl)
        region = labels[box] == i
        _, (iy, ix) = ndi.distance_transform_edt(region, return_indices=True)
        smooth = ndi.uniform_filter(raw[box].astype(np.float64)[iy, ix], 5)  # nearest-pixel fills are streaky
        fill = smooth[region]
        out[box][region] = np.round(fill).astype(raw.dtype) if raw.dtype.kind in "ui" else fill
    return out
