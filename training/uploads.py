"""Digit images the way users upload them: random (training) and named, fixed variants (evaluation).

``random_upload`` turns one 8 x 8 training digit into an upload a user might send - any size and
resampling filter, down/up-scaling round trips, slant, rotation and elastic warp, thick or thin
strokes (a thin pen: the skeleton redrawn 1-3 px wide), blur, paper tone and contrast, noise,
either polarity, a transparent canvas, JPEG. Training then frames it with the card's own
preprocessing, exactly as the service frames an upload.

``VARIANTS`` are the robustness suite's fixed renderings of the held-out digits (``make eval``),
encoded as files so they go through the service's decoding too.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

F = Image.Resampling
FILTERS = [F.NEAREST, F.BILINEAR, F.BICUBIC, F.BOX, F.LANCZOS, F.HAMMING]


def _filter(rng: np.random.Generator) -> Image.Resampling:
    return FILTERS[rng.integers(len(FILTERS))]


def _warp(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotation, shear, anisotropic zoom and a smooth elastic displacement (light ink on 0)."""
    h, w = a.shape
    ang = np.radians(rng.uniform(-15, 15))
    shear = rng.uniform(-0.3, 0.3)
    zx, zy = rng.uniform(0.75, 1.45), rng.uniform(0.85, 1.15)  # wide: people write wider than the UCI writers
    m = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]]) @ np.array([[zy, 0], [shear, zx]])
    inv = np.linalg.inv(m)
    centre = np.array([h, w]) / 2 - 0.5
    coords = np.indices((h, w)).reshape(2, -1).T - centre
    src = coords @ inv.T + centre
    if rng.random() < 0.5 and min(h, w) >= 16:
        amp = rng.uniform(0.01, 0.04) * min(h, w)
        dy = ndimage.gaussian_filter(rng.normal(size=(h, w)), min(h, w) / 6)
        dx = ndimage.gaussian_filter(rng.normal(size=(h, w)), min(h, w) / 6)
        s = amp / max(np.abs(dy).max(), np.abs(dx).max(), 1e-9)
        src = src + np.stack([dy.ravel(), dx.ravel()], 1) * s
    return ndimage.map_coordinates(a, src.T, order=1, mode="constant", cval=0.0).reshape(h, w)


def _pen(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Redrawn with a thin pen: the centre line of the (smoothed) ink, 1-3 px wide, slightly blurred."""
    from skimage.morphology import skeletonize

    smooth = ndimage.gaussian_filter(a, rng.uniform(0.5, 1.5) * a.shape[0] / 32)
    line = skeletonize(smooth > rng.uniform(0.3, 0.55) * smooth.max())
    if rng.random() < 0.6:
        line = ndimage.binary_dilation(line, iterations=int(rng.integers(1, 3)))
    return ndimage.gaussian_filter(line * 255.0, rng.uniform(0.3, 0.8))


def _stroke(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = max(2, round(a.shape[0] / rng.uniform(10, 20)))
    op = ndimage.grey_dilation if rng.random() < 0.5 else ndimage.grey_erosion
    out = op(a, size=(k, k))
    return out if out.max() > 0.3 * a.max() else a


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB" if img.mode not in ("L", "RGB") else img.mode).save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def transparent_canvas(a: np.ndarray, colour: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """Light-ink intensities (0..255) -> RGBA: ink of ``colour`` with the intensity as alpha, on a fully
    transparent background whose RGB is black (what web drawing canvases export)."""
    alpha = np.clip(np.round(a), 0, 255).astype(np.uint8)
    rgb = np.zeros(a.shape + (3,), np.uint8)
    rgb[alpha > 0] = colour
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


PEN_SHARE = 0.45  # uploads drawn at 32 px or more that are redrawn with a thin pen


def _on_paper(a: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Ink (``a``: 0..255 coverage) written on paper and photographed: dark ink on a light sheet lit by a
    tilted plane of light and maybe a soft shadow, sometimes ruled (lines across) or squared, with noise."""
    h, w = a.shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    tilt = rng.normal(0, 1) * (xx - 0.5) + rng.normal(0, 1) * (yy - 0.5)
    light = 1 - rng.uniform(0.0, 0.55) * np.clip(tilt + 0.5, 0, 1)
    if rng.random() < 0.3:
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.2, 0.6)
        light = light * (1 - rng.uniform(0.1, 0.4) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)))
    paper = np.full((h, w), rng.uniform(150, 250))
    if rng.random() < 0.6:
        step, width = rng.uniform(0.08, 0.3) * min(h, w), rng.uniform(1, 3)
        lines = (np.arange(h) + rng.uniform(0, step)) % step < width
        grid = lines[:, None] * np.ones((1, w), bool)
        if rng.random() < 0.5:
            grid = grid | ((np.arange(w) + rng.uniform(0, step)) % step < width)[None, :]
        paper = paper * (1 - rng.uniform(0.1, 0.45) * grid)
    ink = rng.uniform(0, 0.6) * paper
    out = light * (paper + (ink - paper) * a / 255.0) + rng.normal(0, rng.uniform(0.5, 6), a.shape)
    return Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8), "L")


def random_upload(
    digit: np.ndarray, rng: np.random.Generator, pen_share: float = PEN_SHARE, paper_share: float = 0.0
) -> Image.Image:
    """One square uint8 digit (light ink on dark; 8 x 8 UCI or a 64 px glyph) -> a random upload of it
    (PIL image, any mode). ``pen_share``: of the uploads drawn at 32 px or more, the share redrawn
    with a thin pen (the rest of those may get thicker or thinner strokes); ``paper_share``: of those
    drawn at 48 px or more, the share written on unevenly lit, maybe ruled paper."""
    size = int(rng.choice([8, 16, 24, 28, 32, 48, 64, 96, 128]))
    img = Image.fromarray(digit)
    if size != img.width:
        img = img.resize((size, size), _filter(rng))
    a = np.asarray(img, np.float64)
    if size >= 16 and rng.random() < 0.8:
        a = _warp(a, rng)
    if size >= 32 and rng.random() < pen_share and a.max() > 0:
        a = _pen(a, rng)
    elif size >= 24 and rng.random() < 0.4:
        a = _stroke(a, rng)
    if rng.random() < 0.3:
        a = ndimage.gaussian_filter(a, rng.uniform(0.3, 1.5) * size / 32)
    if rng.random() < 0.7:  # margins (and off-centre placement): the framing must find the ink
        pads = rng.integers(0, max(2, size // 2), 4)
        a = np.pad(a, ((pads[0], pads[1]), (pads[2], pads[3])))
    if rng.random() < 0.3 and min(a.shape) >= 16:  # down/up round trip
        f = rng.uniform(2, 4)
        small = Image.fromarray(a.astype(np.float32), "F").resize(
            (max(4, round(a.shape[1] / f)), max(4, round(a.shape[0] / f))), _filter(rng)
        )
        a = np.asarray(small.resize((a.shape[1], a.shape[0]), _filter(rng)), np.float64)
    a = np.clip(a, 0, 255)
    if paper_share and size >= 48 and rng.random() < paper_share:
        up = _on_paper(a, rng)
        return _jpeg(up, int(rng.integers(60, 95))) if rng.random() < 0.5 else up
    if rng.random() < 0.12:
        colour = tuple(int(v) for v in rng.integers(0, 90, 3)) if rng.random() < 0.5 else (0, 0, 0)
        return transparent_canvas(a, colour)
    bg, ink = (rng.uniform(0, 90), rng.uniform(150, 255)) if rng.random() < 0.5 else (0.0, 255.0)
    out = bg + (ink - bg) * a / 255.0
    if rng.random() < 0.3:
        out = out + rng.normal(0, rng.uniform(2, 14), out.shape)
    if rng.random() < 0.4:
        out = 255.0 - out
    up = Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8), "L")
    if rng.random() < 0.25:
        up = _jpeg(up, int(rng.integers(30, 95)))
    return up


# -- the robustness suite's fixed variants ---------------------------------------------------------


def _up(d: np.ndarray, size: int, f: Image.Resampling = F.BILINEAR) -> np.ndarray:
    return np.asarray(Image.fromarray(d).resize((size, size), f), np.float64)


def _png(img: Image.Image | np.ndarray) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), "L")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _shifted(d: np.ndarray, rng: np.random.Generator) -> bytes:
    a = _up(d, 32)
    dy, dx = (int(v) * int(rng.choice([-1, 1])) for v in rng.integers(2, 4, 2))
    return _png(ndimage.shift(a, (dy, dx), order=0, mode="constant", cval=0.0))


def _jpeg_bytes(a: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _thick(d: np.ndarray) -> bytes:
    return _png(ndimage.grey_dilation(_up(d, 128), size=(13, 13)))


def _thin(d: np.ndarray) -> bytes:
    """A thin pen: the digit's centre line at 128 px, 3 px wide, anti-aliased. The 8 x 8 blocks are
    smoothed first (bicubic, Gaussian sigma 4 px) so the skeleton keeps the digit's loops and has no
    block-corner spurs."""
    from skimage.morphology import skeletonize

    a = ndimage.gaussian_filter(_up(d, 128, F.BICUBIC), 4.0)
    skeleton = skeletonize(a > 0.4 * a.max())
    return _png(ndimage.gaussian_filter(ndimage.binary_dilation(skeleton, iterations=1) * 255.0, 0.6))


# name -> (digit 8x8 uint8, rng) -> encoded upload
VARIANTS: dict[str, Callable[[np.ndarray, np.random.Generator], bytes]] = {
    "native_8x8": lambda d, rng: _png(d.astype(np.float64)),
    "nearest_32": lambda d, rng: _png(_up(d, 32, F.NEAREST)),
    "bilinear_32": lambda d, rng: _png(_up(d, 32)),
    "bilinear_128": lambda d, rng: _png(_up(d, 128)),
    "bilinear_512": lambda d, rng: _png(_up(d, 512)),
    "shift_2_3px_32": _shifted,
    "inverted_32": lambda d, rng: _png(255.0 - _up(d, 32)),
    "transparent_canvas_128": lambda d, rng: _png(transparent_canvas(_up(d, 128))),
    "thick_strokes_128": lambda d, rng: _thick(d),
    "thin_strokes_128": lambda d, rng: _thin(d),
    "jpeg_q50_64": lambda d, rng: _jpeg_bytes(_up(d, 64), 50),
}
