"""What paper does to a photographed digit, undone before framing (``modelrepo.framing``): uneven light and
ruled or squared lines.

A phone photo of a digit on paper under a desk lamp has paper darker on one side than on the other; the
framing's single background level then reads the shaded paper as ink and boxes the whole sheet. Ruled or
squared paper adds lines across the sheet that read as ink too. ``ring_light`` / ``flatten_lighting`` fit a
smooth light surface to the paper and subtract it; ``remove_ruling`` takes thin, evenly spaced lines out.
Both leave evenly lit, unruled uploads exactly as they are (the classifiers' robustness suite is unchanged to
the last image). No torch here: the service imports it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

FLATTEN_MIN_SIDE = 24  # px: below this the border ring is a pixel or two (the 8 x 8 digits themselves)
UNEVEN = 0.12  # the ring's light surface varying by more than this share of the image's span: flattened


def _quadratic(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The basis of a smooth light surface over normalised coordinates (-0.5..0.5)."""
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], -1)


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
    h, w = g.shape
    ring = np.zeros((h, w), bool)
    ring[:b], ring[-b:], ring[:, :b], ring[:, -b:] = True, True, True, True
    step = max(1, int(np.sqrt(ring.sum() / 2048)))
    ys, xs = np.nonzero(ring)
    ys, xs = ys[::step], xs[::step]
    basis = _quadratic(ys / h - 0.5, xs / w - 0.5)
    coef, keep = _robust_fit(basis, g[ys, xs], -1.0 if dark_ink else 1.0, None)
    if keep.mean() < 0.5:
        return None
    fitted = basis @ coef
    return coef if float(fitted.max() - fitted.min()) > UNEVEN * span else None


def flatten_lighting(g: np.ndarray, dark_ink: bool, coef: np.ndarray) -> np.ndarray:
    """The paper's light as a smooth quadratic surface - the border ring's fit (``ring_light``) refined on the
    whole sheet's paper - subtracted: the paper comes out flat at its median level, the ink keeps its contrast
    to it."""
    h, w = g.shape
    step = max(1, int(np.sqrt(h * w / 4096)))
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    basis = _quadratic(ys.ravel() / h - 0.5, xs.ravel() / w - 0.5)
    coef, keep = _robust_fit(basis, g[::step, ::step].ravel(), -1.0 if dark_ink else 1.0, coef)
    yy, xx = np.mgrid[0:h, 0:w]
    surface = _quadratic(yy / h - 0.5, xx / w - 0.5) @ coef
    return g - surface + float(np.median(basis[keep] @ coef))


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
