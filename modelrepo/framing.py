"""Framing an upload the way the training digits were framed: alpha, polarity, ink box, size, centre.

The UCI digits (scikit-learn's ``load_digits``) were made by cropping each handwritten digit to its
ink, normalising its size into a 32 x 32 bitmap and counting the ink in 4 x 4 blocks (8 x 8 grid).
A digit drawn on a 200 x 200 canvas, photographed on paper or exported by a web canvas with a
transparent background is nothing like that until it is framed the same way:

1. alpha: transparent pixels are background; the image is composited onto the background that
   makes its ink visible (never reading the RGB of transparent pixels as ink);
2. polarity: the background is the border ring's level; dark ink on light paper is inverted so the
   ink is light on dark, as in training;
3. levels: background -> 0, ink -> 1 (contrast, paper tone and ink colour drop out);
4. ink box: the box holding all but a sliver of the ink mass (isolated noise does not stretch it);
5. size and centre: the box is scaled, aspect kept, so its longer side fills ``fit`` of the
   ``grid`` cells, drawn at ``grid * supersample`` pixels and placed with its centre of mass at the
   centre, then block-averaged down to the grid (the UCI recipe).

The same function frames every training image (after augmentation) and every upload, so training,
``make eval`` and the service cannot disagree. No torch here: the service imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from modelrepo.card import DomainCheck, Framing
from modelrepo.noise import LUMA
from modelrepo.paper import FLATTEN_MIN_SIDE, flatten_lighting, remove_ruling, ring_light, sheet_box

Invert = Literal["auto", "true", "false"]

NO_INK = "no ink found: the image is nearly uniform, so any class is a guess"
COLOUR = "a colour image: this model reads gray digits (ink on plain paper); the answer is unreliable"
UNLIKE_TRAINING = "the image is unlike the digits this model was trained on (once framed); the answer is unreliable"
INK_EVERYWHERE = "most of the image is ink-like: this does not look like one digit on a plain background"
MANY_MARKS = "the image holds many separate marks: this does not look like one digit; the answer is unreliable"
# a digit is one or two marks (a 5's hat, a broken stroke); photos of coins, text or cells are many
_MANY_MARKS, _MARK_SHARE, _MARK_LEVEL = 5, 0.02, 0.25

_BORDER_FRACTION = 0.08  # the outer ring taken as background, as a fraction of the shorter side
_MASS_TRIM = 0.005  # ink mass left out at each side of the ink box
# larger 8-bit uploads are reduced to this longer side before framing (JPEG: decoded at 1/2 - 1/8 scale): the
# grid is 8 x 8, and a 3000 x 3000 phone photo took 2 s to frame at full size (2026-12-06)
FRAME_MAX_SIDE = 1024


@dataclass
class FrameNotes:
    """What framing did to one image, and why its answer may not be trusted."""

    inverted: bool = False
    alpha_composited: str | None = None  # "white" | "black": the background transparent pixels became
    ink_box: tuple[int, int, int, int] | None = None  # left, top, right, bottom in the upload's pixels
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "framed": self.ink_box is not None,
            "inverted": self.inverted,
            "alpha_composited_on": self.alpha_composited,
            "ink_box": list(self.ink_box) if self.ink_box else None,
        }


def flatten_alpha(img: Image.Image) -> tuple[Image.Image, str | None]:
    """Composite an image with transparency onto white (dark ink) or black (light ink).

    The ink's colour is read from the opaque pixels only; an alpha that is fully opaque everywhere
    is dropped as it is.
    """
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode not in ("RGBA", "LA", "PA", "La", "RGBa"):
        return img, None
    rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
    alpha = rgba[..., 3] / 255.0
    gray = rgba[..., :3] @ LUMA.astype(np.float32)
    if alpha.min() >= 1.0:
        return Image.fromarray(rgba[..., :3].astype(np.uint8), "RGB"), None
    opaque = alpha > 0.5
    ink_level = float((gray * alpha).sum() / max(alpha.sum(), 1e-6)) if not opaque.any() else float(gray[opaque].mean())
    background = 255.0 if ink_level < 128 else 0.0
    rgb = rgba[..., :3] * alpha[..., None] + background * (1.0 - alpha[..., None])
    return Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8), "RGB"), ("white" if background else "black")


def _border(g: np.ndarray) -> np.ndarray:
    h, w = g.shape
    b = max(1, round(_BORDER_FRACTION * min(h, w)))
    return np.concatenate([g[:b].ravel(), g[-b:].ravel(), g[b:-b, :b].ravel(), g[b:-b, -b:].ravel()])


def _median(a: np.ndarray) -> float:
    """np.median of a 1-D array by one partial sort (np.median's general machinery costs more than
    the sort on the few hundred border pixels of an upload)."""
    n = a.size
    part = np.partition(a, ((n - 1) // 2, n // 2))
    return float(part[(n - 1) // 2] + part[n // 2]) / 2.0


def _levels(g: np.ndarray) -> tuple[float, float]:
    """The background's and the ink's extreme levels: the 0.1th and 99.9th percentiles (the minimum
    and maximum for small images), robust to a hot pixel. One partial sort for both."""
    flat = g.ravel()
    k = flat.size // 1000
    part = np.partition(flat, (k, flat.size - 1 - k))
    return float(part[k]), float(part[flat.size - 1 - k])


FLATTEN = True  # the paper corrections of modelrepo.paper, switchable for comparisons (tests, reports)
RULING = True
SHEET = True


def _ink_box(w: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), exclusive ends, holding all but ``_MASS_TRIM`` of the mass per side."""

    def span(profile: np.ndarray) -> tuple[int, int]:
        c = np.cumsum(profile) / profile.sum()
        lo = int(np.searchsorted(c, _MASS_TRIM, side="right"))
        hi = int(np.searchsorted(c, 1.0 - _MASS_TRIM, side="left")) + 1
        return lo, max(hi, lo + 1)

    top, bottom = span(w.sum(axis=1))
    left, right = span(w.sum(axis=0))
    return top, bottom, left, right


def _resize(a: np.ndarray, width: int, height: int) -> np.ndarray:
    """Float image resize with Pillow's antialiased bilinear filter (area-aware when shrinking)."""
    return np.asarray(Image.fromarray(a.astype(np.float32), "F").resize((width, height), Image.Resampling.BILINEAR))


def _chroma(img: Image.Image) -> float:
    """Mean (max - min) over RGB, 0..1: 0 for gray images, ~0.3+ for saturated photos."""
    if img.mode not in ("RGB", "RGBA", "P", "CMYK", "YCbCr"):
        return 0.0
    rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]  # channel by channel: a max over a last axis of 3 is slow
    return float((np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)).mean() / 255.0)


def _paper(gray: np.ndarray) -> tuple[np.ndarray, float, float, float, bool, float]:
    """The image as float64 (its lighting flattened when the paper is lit unevenly), its extreme levels, the
    background (the border ring's median), whether the ink is darker than it, and the full scale."""
    g = gray.astype(np.float64)
    lo, hi = _levels(g)
    border = _border(g)
    bg = _median(border)
    dark_ink = bg > lo + 0.5 * (hi - lo)
    full_scale = 65535.0 if gray.dtype == np.uint16 or g.max() > 255 else 255.0
    if gray.dtype.kind == "f" and g.min() >= 0.0 and g.max() <= 1.0:
        full_scale = 1.0  # a float image in [0, 1] (a float TIFF): its own scale, not 8-bit levels
    paper = FLATTEN and dark_ink and min(g.shape) >= FLATTEN_MIN_SIDE  # lamps light paper, not dark canvases
    ring = max(1, round(_BORDER_FRACTION * min(g.shape)))
    light = ring_light(g, ring, border, dark_ink, lo, hi) if paper else None
    if light is not None:
        g = flatten_lighting(g, dark_ink, light)
        lo, hi = _levels(g)
        bg = _median(_border(g))
    return g, lo, hi, bg, dark_ink, full_scale


def _on_sheet(gray: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """A sheet of paper photographed with the desk around it (``paper.sheet_box``): the sheet alone, the desk in
    its box's corners painted over with the paper's level, and where the box starts (y, x); else the image."""
    found = sheet_box(gray, _BORDER_FRACTION) if SHEET else None
    if found is None:
        return gray, (0, 0)
    (top, bottom, left, right), inside = found
    crop = gray[top:bottom, left:right].astype(np.float64)
    on = inside[: crop.shape[0], : crop.shape[1]]
    crop[~on] = np.median(crop[on])
    return crop, (top, left)


def frame_digit(
    gray: np.ndarray, spec: Framing, invert: Invert = "auto", chroma: float = 0.0
) -> tuple[np.ndarray, FrameNotes]:
    """A gray image (H, W) on any scale -> (grid x grid float32 in 0..1, light ink on dark), notes."""
    notes = FrameNotes()
    if chroma > 0.15:
        notes.warnings.append(COLOUR)
    gray, (y, x) = _on_sheet(gray)
    g, lo, hi, bg, dark_ink, full_scale = _paper(gray)
    span = hi - lo
    if spec.polarity == "dark_on_light":
        dark_ink = not dark_ink
    notes.inverted = dark_ink if invert == "auto" else invert == "true"
    if notes.inverted:
        g, bg, hi = -g, -bg, -lo
    big = spec.grid * spec.supersample
    if span < 0.08 * full_scale or hi - bg < 0.08 * full_scale:
        notes.warnings.append(NO_INK)
        return np.zeros((spec.grid, spec.grid), np.float32), notes
    # (np.minimum / np.maximum: np.clip's wrapper costs more than the arithmetic on an upload)
    g = np.minimum(np.maximum((g - bg) / (hi - bg), 0.0), 1.0)  # background 0, ink 1
    if RULING:
        g = remove_ruling(g)
    mass = np.maximum(g - 0.3, 0.0)
    if not mass.any():  # nothing stands out of the paper (after its lines were taken out)
        notes.warnings.append(NO_INK)
        return np.zeros((spec.grid, spec.grid), np.float32), notes
    if np.count_nonzero(g > 0.5) > 0.6 * g.size:
        notes.warnings.append(INK_EVERYWHERE)
    top, bottom, left, right = _ink_box(mass)
    notes.ink_box = (left + x, top + y, right + x, bottom + y)
    crop = g[top:bottom, left:right]
    if _marks(crop) >= _MANY_MARKS:
        notes.warnings.append(MANY_MARKS)
    h, w = crop.shape
    scale = spec.fit * spec.supersample / max(h, w)
    nh, nw = max(1, min(big, round(h * scale))), max(1, min(big, round(w * scale)))
    crop = np.minimum(np.maximum(_resize(crop, nw, nh), 0.0), 1.0)
    rows, cols = crop.sum(axis=1), crop.sum(axis=0)  # the centre of mass from the two profiles
    m = rows.sum()
    if m > 0:
        cy, cx = rows @ np.arange(nh) / m + 0.5, cols @ np.arange(nw) / m + 0.5
    else:
        cy, cx = nh / 2, nw / 2
    if spec.center == "box":
        cy, cx = nh / 2, nw / 2
    y0 = min(max(round(float(big / 2 - cy)), 0), big - nh)
    x0 = min(max(round(float(big / 2 - cx)), 0), big - nw)
    canvas = np.zeros((big, big), np.float32)
    canvas[y0 : y0 + nh, x0 : x0 + nw] = crop
    if spec.min_stroke > 0:
        canvas = thicken(canvas, spec.min_stroke)
    s = spec.supersample
    grid = canvas.reshape(spec.grid, s, spec.grid, s).mean(axis=(1, 3))
    peak = float(grid.max())
    grid = (grid / peak if peak > 0 else grid).astype(np.float32)
    if spec.domain is not None and residual(grid, spec.domain) > spec.domain.threshold:
        notes.warnings.append(UNLIKE_TRAINING)
    return grid, notes


def _marks(crop: np.ndarray) -> int:
    """Separate marks in the ink box (0..1, ink 1): 8-connected regions above a quarter of the ink's level,
    each holding at least 2 % of the marked pixels (JPEG specks and dust do not count)."""
    labels, n = ndi.label(crop > _MARK_LEVEL, structure=np.ones((3, 3), bool))
    if n < _MANY_MARKS:
        return n
    sizes = np.bincount(labels.ravel())[1:]
    return int(np.count_nonzero(sizes >= _MARK_SHARE * sizes.sum()))


def stroke_width(canvas: np.ndarray) -> float:
    """Mean stroke width of the ink (px): 2 x area / perimeter of the ink above half its peak
    (a line of width w and length L has area wL and perimeter about 2L)."""
    ink = canvas > 0.5 * float(canvas.max())
    area = int(ink.sum())
    if area == 0:
        return 0.0
    # edges between ink and not-ink (outside the canvas counts as not-ink)
    inside = np.count_nonzero(ink[1:] != ink[:-1]) + np.count_nonzero(ink[:, 1:] != ink[:, :-1])
    rim = sum(np.count_nonzero(edge) for edge in (ink[0], ink[-1], ink[:, 0], ink[:, -1]))
    perimeter = inside + rim
    return 2.0 * area / max(perimeter, 1)


def thicken(canvas: np.ndarray, min_width: float) -> np.ndarray:
    """Grey dilation by a disc so the ink's mean stroke width reaches ``min_width`` (px)."""
    width = stroke_width(canvas)
    if width == 0.0 or width >= min_width:
        return canvas
    r = int(np.ceil((min_width - width) / 2))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return ndi.grey_dilation(canvas, footprint=(yy * yy + xx * xx) <= r * r + 0.5)


_SUBSPACES: dict[int, tuple[DomainCheck, np.ndarray, np.ndarray]] = {}


def _subspace(check: DomainCheck) -> tuple[np.ndarray, np.ndarray]:
    """The check's mean and components as arrays, converted once per card (not per request)."""
    hit = _SUBSPACES.get(id(check))
    if hit is None or hit[0] is not check:
        hit = (check, np.asarray(check.mean, np.float64), np.asarray(check.components, np.float64))
        if len(_SUBSPACES) > 64:
            _SUBSPACES.clear()
        _SUBSPACES[id(check)] = hit
    return hit[1], hit[2]


def residual(grid: np.ndarray, check: DomainCheck) -> float:
    """Distance of a framed grid from the training images' principal subspace."""
    mean, c = _subspace(check)
    v = grid.ravel().astype(np.float64) - mean
    return float(np.linalg.norm(v - c.T @ (c @ v)))


def fit_domain_check(train: np.ndarray, held_out: np.ndarray, k: int = 12, quantile: float = 0.995) -> DomainCheck:
    """Principal subspace of framed training grids (N, grid*grid); threshold = ``quantile`` of the
    residuals of held-out framed grids (so about 1 - quantile of real digits are flagged)."""
    mean = train.mean(axis=0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    comps = vt[:k]
    r = np.linalg.norm((held_out - mean) - ((held_out - mean) @ comps.T) @ comps, axis=1)
    return DomainCheck(
        mean=[round(float(v), 5) for v in mean],
        components=[[round(float(v), 5) for v in row] for row in comps],
        threshold=round(float(np.quantile(r, quantile)), 5),
        quantile=quantile,
    )


def frame_image(img: Image.Image, spec: Framing, invert: Invert = "auto") -> tuple[Image.Image, FrameNotes]:
    """A decoded upload (any mode) -> the framed 8-bit grid as a PIL ``L`` image, and what was done."""
    full = img.size
    if max(full) > FRAME_MAX_SIDE and img.mode in ("L", "LA", "RGB", "RGBA"):
        if img.format == "JPEG":
            img.draft(img.mode, (FRAME_MAX_SIDE, FRAME_MAX_SIDE))  # decoded at the smallest scale still as large
        k = FRAME_MAX_SIDE / max(img.size)
        if k < 1:
            img = img.resize((max(1, round(img.width * k)), max(1, round(img.height * k))), Image.Resampling.BILINEAR)
    framed, notes = _frame(img, spec, invert)
    if notes.ink_box is not None and img.size != full:  # back in the upload's own pixels
        scale = (full[0] / img.size[0], full[1] / img.size[1])
        notes.ink_box = tuple(round(v * scale[i % 2]) for i, v in enumerate(notes.ink_box))
    return framed, notes


def _frame(img: Image.Image, spec: Framing, invert: Invert) -> tuple[Image.Image, FrameNotes]:
    img, composited = flatten_alpha(img)
    chroma = _chroma(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        gray = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            gray = gray.astype(np.uint16)
    else:
        gray = np.asarray(img.convert("L"))
    framed, notes = frame_digit(gray, spec, invert, chroma)
    notes.alpha_composited = composited
    return Image.fromarray(np.round(framed * 255).astype(np.uint8), "L"), notes
