"""What paper does to a photographed digit, undone before framing (``modelrepo.framing``): uneven light and
ruled or squared lines - and the desk around a photographed sheet.

A phone photo of a digit on paper under a desk lamp has paper darker on one side than on the other; the
framing's single background level then reads the shaded paper as ink and boxes the whole sheet. Ruled or
squared paper adds lines across the sheet that read as ink too. ``ring_light`` / ``flatten_lighting`` fit a
smooth light surface to the paper and subtract it; ``remove_ruling`` takes thin, evenly spaced lines out;
``sheet_box`` finds a sheet lying on a darker desk, so that the digit is framed on the sheet alone.
All three leave evenly lit, unruled uploads without a desk exactly as they are (the classifiers' robustness
suite is unchanged to the last image). No torch here: the service imports it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

FLATTEN_MIN_SIDE = 24  # px: below this the border ring is a pixel or two (the 8 x 8 digits themselves)
UNEVEN = 0.12  # the ring's light surface varying by more than this share of the image's span: flattened


def _quadratic(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The basis of a smooth light surface over normalised coordinates (-0.5..0.5)."""
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], -1)


def _surface(shape: tuple[int, int], coef: np.ndarray) -> np.ndarray:
    """The fitted light surface over the whole image."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    return _quadratic(yy / h - 0.5, xx / w - 0.5) @ coef


def _robust_fit(basis: np.ndarray, v: np.ndarray, sign: float, coef: np.ndarray | None, rounds: int = 4):
    """A light surface fitted to the paper among the samples ``v``: each round keeps the samples at most 2.5
    robust deviations on the ink's side (``sign``) of the last fit (before the first: those on the paper's side
    of the median sample, or as a first ``coef`` says). (coefficients, kept mask)."""
    if coef is None:
        keep = (v - np.median(v)) * sign <= 0  # the paper's side of the median sample
    else:
        r = (v - basis @ coef) * sign
        keep = r < 2.5 * (1.4826 * np.median(np.abs(r - np.median(r))) + 1e-9)
    for _ in range(rounds):
        coef, *_ = np.linalg.lstsq(basis[keep], v[keep], rcond=None)
        r = (v - basis @ coef) * sign
        keep = r < 2.5 * (1.4826 * np.median(np.abs(r[keep] - np.median(r[keep]))) + 1e-9)
    return coef, keep


def ring_light(g: np.ndarray, b: int, border: np.ndarray, dark_ink: bool, lo: float, hi: float) -> np.ndarray | None:
    """Paper lit unevenly (a lamp, a shadow, a phone's vignetting): a light surface fitted to the paper of the
    border ring ``b`` px wide (``border``: its pixels; robustly: ink that reaches the border is left out)
    that varies over the image by more than ``UNEVEN`` of its span (``lo``..``hi``); its coefficients, or
    None for evenly lit paper and for digits that fill the image (their ring's paper is flat)."""
    span, mid = hi - lo, 0.5 * (lo + hi)
    paper = border[border > mid] if dark_ink else border[border < mid]
    if span <= 0 or paper.size == 0 or float(paper.max() - paper.min()) <= UNEVEN * span:
        return None  # the ring's paper within the band: the common case, decided cheaply
    ys, xs, basis = _ring_samples(g.shape, _ring_mask(g.shape, b))
    coef, keep = _robust_fit(basis, g[ys, xs], -1.0 if dark_ink else 1.0, None)
    if keep.mean() < 0.5:
        return None
    fitted = basis @ coef
    return coef if float(fitted.max() - fitted.min()) > UNEVEN * span else None


def _ring_samples(shape: tuple[int, int], ring: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels of the border ring (a mask), thinned to about 2,048, and the light surface's basis at them."""
    h, w = shape
    ys, xs = np.nonzero(ring)
    step = max(1, int(np.sqrt(ys.size / 2048)))
    ys, xs = ys[::step], xs[::step]
    return ys, xs, _quadratic(ys / h - 0.5, xs / w - 0.5)


def flatten_lighting(g: np.ndarray, dark_ink: bool, coef: np.ndarray) -> np.ndarray:
    """The paper's light as a smooth quadratic surface - the border ring's fit (``ring_light``) refined on the
    whole sheet's paper - subtracted: the paper comes out flat at its median level, the ink keeps its contrast
    to it."""
    h, w = g.shape
    step = max(1, int(np.sqrt(h * w / 4096)))
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    basis = _quadratic(ys.ravel() / h - 0.5, xs.ravel() / w - 0.5)
    coef, keep = _robust_fit(basis, g[::step, ::step].ravel(), -1.0 if dark_ink else 1.0, coef)
    return g - _surface(g.shape, coef) + float(np.median(basis[keep] @ coef))


RULING_MIN_SIDE = 64  # px: smaller uploads are digits alone (a stroke there may span the image)
RULING_LEVEL = 0.08  # a row (column) whose 25th percentile is above this is a ruled line, if it is one of several


def remove_ruling(g: np.ndarray) -> np.ndarray:
    """Ruled or squared paper: rows (columns) three quarters inked are paper lines when there are at least 3
    thin runs of them (each at most 4 % of the side, together under a quarter of it), evenly spaced - a
    digit's bar is one thick run. Each line's level (its lower quartile) is subtracted along it (the ink it
    crosses keeps the rest). ``g``: background 0, ink 1."""
    if min(g.shape) < RULING_MIN_SIDE:
        return g
    before = g
    inked = g > RULING_LEVEL
    for axis in (1, 0):
        lines = np.count_nonzero(inked, axis=axis) > 0.75 * g.shape[axis]
        if np.count_nonzero(lines) < 3 or lines.mean() > 0.25:
            continue
        runs, n = ndi.label(lines)
        if n < 3 or np.bincount(runs)[1:].max() > 0.04 * lines.size:
            continue
        centres = np.asarray(ndi.center_of_mass(lines, runs, range(1, n + 1)))[:, 0]
        gaps = np.diff(centres)
        if gaps.max() - gaps.min() > 0.25 * gaps.mean():  # ruling is periodic; a digit's strokes are not
            continue
        idx = np.flatnonzero(lines)
        if axis == 1:
            g = g.copy()
            g[idx] = np.maximum(g[idx] - np.percentile(g[idx], 25, axis=1)[:, None], 0.0)
        else:
            g = g.copy()
            g[:, idx] = np.maximum(g[:, idx] - np.percentile(g[:, idx], 25, axis=0)[None, :], 0.0)
        inked = g > RULING_LEVEL
    if g is not before:  # the lines may have been the darkest marks (a faint pencil on dark ruling): ink to 1
        flat = g.ravel()
        k = flat.size - 1 - flat.size // 1000
        top = float(np.partition(flat, k)[k])  # the ink's level: the 99.9th percentile
        g = np.minimum(g / top, 1.0) if top > 0 else g
    return g


SHEET_MIN_SIDE = 80  # px: smaller uploads are the digit itself (and a photo of a sheet is larger)
SHEET_DARK_RING = 0.7  # the border ring's median below this share of the image's range (1st-95th percentile)
SHEET_WORK_SIDE = 256  # the sheet is looked for on a copy at most this large (block means)
SHEET_EDGE_PX = 4  # a sheet's edge rises from the desk to the paper within a few pixels of that copy


def _work_copy(g: np.ndarray) -> tuple[np.ndarray, int]:
    """Block means at most ``SHEET_WORK_SIDE`` px a side, and the block size."""
    h, w = g.shape
    k = max(1, -(-max(h, w) // SHEET_WORK_SIDE))
    return g[: h // k * k, : w // k * k].reshape(h // k, k, w // k, k).mean(axis=(1, 3)), k


def _is_sheet(s: np.ndarray, sheet: np.ndarray, filled: np.ndarray, ring: np.ndarray) -> bool:
    """Paper with writing on a desk, not a light digit on a dark canvas (``sheet_box``). ``sheet``: the bright
    pixels within the region ``filled`` (paper enclosed by a written 0 included)."""
    root, marks = float(np.sqrt(filled.sum())), filled & ~sheet
    if filled.sum() < 0.2 * s.size or not 0.015 * filled.sum() <= marks.sum() <= 0.2 * filled.sum():
        return False
    if _extent(marks) < 0.2 * _extent(filled):  # writing spans part of the sheet; specks in a blurred digit do not
        return False
    if ndi.distance_transform_edt(sheet).max() < 0.15 * root or ndi.distance_transform_edt(marks).max() > 0.06 * root:
        return False  # pen strokes are not a sheet; the inside of a thick light 0 or 8 is not writing
    paper, desk, ink = (float(np.median(s[m])) for m in (sheet, ring, marks))
    if paper - desk < 0.5 * (paper - ink) or _hull_share(filled) < 0.9:  # a desk as dark as ink; a convex sheet
        return False
    gy, gx = np.gradient(s)
    return bool(np.median(np.hypot(gy, gx)[filled ^ ndi.binary_erosion(filled)]) >= (paper - desk) / SHEET_EDGE_PX)


def _desk_relative(s: np.ndarray, band: np.ndarray) -> np.ndarray:
    """The image divided by the light falling on the desk: a smooth surface fitted (in logarithms, robustly) to
    the border ring and carried over the sheet - a lamp lights desk and paper alike, so the shaded side of the
    paper stays brighter than the desk beside it."""
    v = np.log(np.maximum(s, 1e-6 * max(float(s.max()), 1e-12)))
    ys, xs, basis = _ring_samples(s.shape, band)
    start = np.array([np.median(v[ys, xs]), 0, 0, 0, 0, 0])  # flat at the desk's median; paper poking in left out
    coef, _ = _robust_fit(basis, v[ys, xs], 1.0, start)
    return s / np.exp(_surface(s.shape, coef))


def sheet_box(g: np.ndarray, ring: float) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """(top, bottom, left, right) of a sheet of paper photographed with a darker surface around it (a desk), and
    which pixels of that box are the sheet (its edge left out; a sheet photographed at an angle leaves desk in
    the box's corners); None for anything else. Without it the framing takes the desk for the background and
    the whole bright sheet for the ink (digits photographed on a desk, ``training.data.paper_photo.on_desk``: the
    default model read 11 %; sheets are found in 89 % of them, and 81 % are read right).

    The sheet: the largest region nearer the image's bright level (95th percentile) than the border ring's,
    when most of the ring is outside it. It counts (``_is_sheet``) if it is solid (its distance transform
    reaches 15 % of the square root of its filled area), convex (90 % of its hull), sharp-edged (desk to
    paper within ``SHEET_EDGE_PX`` px), with a desk as dark as the writing, and holds writing: thin dark marks
    (1.5-20 % of it, spanning a fifth of it, none wider than 6 % of that root) - so that a light digit on a
    dark canvas (a pen stroke, a blurred 8 x 8 digit, the inside of a thick 0) never is one: the classifiers'
    robustness suite frames every image as before."""
    if min(g.shape) < SHEET_MIN_SIDE:
        return None
    s, k = _work_copy(g)
    band = _ring_mask(s.shape, max(1, round(ring * min(s.shape))))
    low, high = np.percentile(s[::2, ::2], (1, 95))
    if np.median(s[band]) - low > SHEET_DARK_RING * (high - low):
        return None  # no dark surround (most uploads: paper or a canvas edge to edge) - the cheap way out
    s = _desk_relative(s, band)
    bright = s > (np.median(s[band]) + np.percentile(s, 95)) / 2
    labels, n = ndi.label(bright)
    if n == 0 or bright[band].mean() > 0.5:
        return None
    filled = ndi.binary_fill_holes(labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:])))
    if not _is_sheet(s, bright & filled, filled, band):
        return None
    inner = ndi.binary_erosion(filled, iterations=max(1, round(0.03 * np.sqrt(filled.sum()))))  # its edge left out
    rows, cols = np.flatnonzero(inner.any(axis=1)), np.flatnonzero(inner.any(axis=0))
    if rows.size == 0:
        return None
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return (top * k, bottom * k, left * k, right * k), np.repeat(np.repeat(inner[top:bottom, left:right], k, 0), k, 1)


def _ring_mask(shape: tuple[int, int], b: int) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[:b], m[-b:], m[:, :b], m[:, -b:] = True, True, True, True
    return m


def _hull_share(mask: np.ndarray) -> float:
    """The region's area over its convex hull's (1 for a convex region)."""
    from scipy.spatial import ConvexHull, QhullError

    ys, xs = np.nonzero(mask ^ ndi.binary_erosion(mask))  # its outline is enough for the hull
    try:
        hull = ConvexHull(np.column_stack([ys, xs]).astype(np.float64))
    except QhullError:
        return 0.0
    return float(mask.sum() / max(hull.volume + hull.area / 2 + 1, 1.0))  # pixel areas: half the perimeter added


def _extent(mask: np.ndarray) -> int:
    """The longer side of the region's bounding box (px)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1) if rows.size else 0
