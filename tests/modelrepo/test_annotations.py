"""Burnt-in annotations (a scale bar and its label drawn into a fluorescence image) are painted over before
segmentation; bright cells, saturated or not, are left alone."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from modelrepo.annotations import burnt_in, painted_over
from training.data.cells_alt import make_alt_cell_dataset


def _eight_bit(im: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(im, (0.1, 99.9))
    return (np.clip((im - lo) / (hi - lo), 0, 1) * 255).round().astype(np.uint8)


def _with_scale_bar(a: np.ndarray) -> np.ndarray:
    img = Image.fromarray(a)
    draw = ImageDraw.Draw(img)
    h, w = a.shape
    draw.rectangle([w - 8 - w // 5, h - 11, w - 8, h - 8], fill=255)
    draw.text((w - 8 - w // 5, h - 24), "10 um", fill=255)
    return np.asarray(img)


def test_a_scale_bar_and_its_label_are_found_and_painted_over() -> None:
    a = _eight_bit(make_alt_cell_dataset(1, seed=11)[0].image)
    marked = _with_scale_bar(a)
    mask, sizes = burnt_in(marked)
    drawn = marked != a
    bar = np.zeros_like(drawn)
    h, w = a.shape
    bar[h - 11 : h - 7, w - 8 - w // 5 : w - 7] = True
    assert mask[bar].all() and max(sizes) >= bar.sum()  # the whole bar, as one mark
    assert mask[drawn].mean() > 0.5  # most of the label's pixels too (anti-aliased glyph edges are grown over)
    from scipy import ndimage as ndi

    elsewhere, n = ndi.label(mask & ~ndi_grown(drawn))
    assert n <= 10 and (n == 0 or np.bincount(elsewhere.ravel())[1:].max() <= 2)  # at most the camera's hot pixels
    out = painted_over(marked, mask)
    assert out[bar].max() < 0.5 * 255
    untouched = ~ndi_grown(mask)
    assert np.array_equal(out[untouched], marked[untouched])


def ndi_grown(m: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    return ndi.binary_dilation(m, iterations=2)


def test_bright_and_saturated_cells_are_not_annotations() -> None:
    yy, xx = np.mgrid[0:96, 0:96]
    rng = np.random.default_rng(0)
    img = rng.normal(20, 3, (96, 96))
    for cy, cx, r in ((30, 30, 12), (60, 65, 8), (20, 75, 5)):
        img += 400 * np.exp(-((np.hypot(yy - cy, xx - cx) / r) ** 4))  # flat-topped blobs, blurred edges
    clipped = np.clip(img, 0, 255).astype(np.uint8)  # the brightest saturate at 255
    assert (clipped == 255).sum() > 100
    mask, _ = burnt_in(clipped)
    assert not mask.any()
    sixteen = np.clip(img * 100, 0, 65535).astype(np.uint16)
    assert not burnt_in(sixteen)[0].any()
