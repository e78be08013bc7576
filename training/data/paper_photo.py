"""Digits photographed on paper with a phone: the robustness suite's ``paper_photo`` set. Never feeds training.

A pen-drawn digit (``drawn_digits.py``) becomes ink on a sheet of paper: paper of a random tone (warm or
cool white, recycled gray), plain, ruled (lines across, bluish, evenly spaced) or squared (a grid); ink
black, blue or pencil gray at its own strength; lit by a lamp from one side (a linear fall-off of 15-50 %)
and darkened towards the corners (vignetting); sensor noise; saved as an RGB JPEG at quality 70-95, as
phones save photos. Deterministic by the generator passed in. ``on_desk``: the same kind of digit on a sheet
lying on a desk, photographed with the desk around it (a probe of the framing's sheet crop, not in the suite).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

INKS = {"black": (0.08, 0.08, 0.1), "blue": (0.1, 0.15, 0.55), "pencil": (0.35, 0.35, 0.38)}


def _lines(n: int, period: float, width: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) weights 0..1: evenly spaced lines ``width`` px wide every ``period`` px, anti-aliased."""
    pos = (np.arange(n) + 0.5 - rng.uniform(0, period)) % period
    return np.clip(width / 2 + 0.5 - np.minimum(pos, period - pos), 0, 1)


def _ink(digit: Image.Image) -> np.ndarray:
    """How much ink covers each pixel of a drawn digit (0..1), whatever the drawing's polarity."""
    a = np.asarray(digit, np.float64) / 255.0
    return 1.0 - a if a.mean() > 0.5 else a


def _light(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """(h, w) light falling on the scene: a lamp from one side (a linear fall-off of 15-50 %) and the phone's
    vignetting (up to 30 % darker in the corners)."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    t = rng.uniform(0, 2 * np.pi)
    lamp = 1 - rng.uniform(0.15, 0.5) * ((xx - 0.5) * np.cos(t) + (yy - 0.5) * np.sin(t) + 0.5)
    return lamp * (1 - rng.uniform(0, 0.3) * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2) * 2)


def _phone_jpeg(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
    """(h, w, 3) in 0..1 with sensor noise, as the RGB JPEG (quality 70-95) a phone saves."""
    rgb = rgb + rng.normal(0, rng.uniform(0.005, 0.025), rgb.shape)
    out = io.BytesIO()
    Image.fromarray(np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8), "RGB").save(
        out, "JPEG", quality=int(rng.integers(70, 96))
    )
    return out.getvalue()


def photograph(digit: Image.Image, rng: np.random.Generator, kind: str | None = None) -> bytes:
    """A drawn digit (L) as a JPEG photo of the paper it was written on (``kind``: plain / ruled / squared
    paper, random when None)."""
    ink = _ink(digit)
    h, w = ink.shape
    paper = np.full((h, w, 3), rng.uniform(0.72, 0.96)) * rng.uniform(0.94, 1.0, 3)
    drawn = rng.choice(["plain", "ruled", "squared"], p=[0.4, 0.3, 0.3])
    kind = kind or drawn
    width = max(1.0, min(h, w) / rng.uniform(80, 160))
    if kind != "plain":
        period = min(h, w) * rng.uniform(0.1, 0.3)
        colour = np.array([0.45, 0.6, 0.95]) if kind == "ruled" or rng.random() < 0.5 else np.array([0.6, 0.6, 0.6])
        strength = rng.uniform(0.25, 0.5)
        mask = _lines(h, period, width, rng)[:, None] * np.ones((1, w))
        if kind == "squared":
            mask = np.maximum(mask, _lines(w, period, width, rng)[None, :])
        paper = paper * (1 - strength * mask[..., None] * (1 - colour))
    light = _light(h, w, rng)
    name = str(rng.choice(list(INKS), p=[0.45, 0.4, 0.15]))
    strength = rng.uniform(0.75, 1.0) if name != "pencil" else rng.uniform(0.5, 0.8)
    cover = (ink * strength)[..., None]
    return _phone_jpeg((paper * (1 - cover) + np.asarray(INKS[name]) * cover) * light[..., None], rng)


def on_desk(digit: Image.Image, rng: np.random.Generator) -> bytes:
    """A drawn digit (L) written on a sheet of paper (a margin of 10-40 %) lying on a desk (flat or wood-grained,
    12-50 % of white) a little askew (up to 6 degrees), photographed with the desk around it (10-35 %): one lamp
    and the phone's vignetting light desk and sheet alike; noise; an RGB JPEG at quality 70-95."""
    ink = _ink(digit)
    base = np.median(ink)
    ink = np.clip((ink - base) / (1 - base), 0, 1)  # the drawing's own canvas tone out
    h, w = ink.shape
    pad = int(rng.uniform(0.1, 0.4) * max(h, w))  # paper margin around the writing
    sheet_h, sheet_w = h + 2 * pad, w + 2 * pad
    inkp = np.zeros((sheet_h, sheet_w))
    inkp[pad : pad + h, pad : pad + w] = ink
    m = int(rng.uniform(0.1, 0.35) * max(sheet_h, sheet_w))
    H, W = sheet_h + 2 * m, sheet_w + 2 * m
    desk_tone = rng.uniform(0.12, 0.5)
    desk = np.full((H, W), desk_tone)
    if rng.random() < 0.5:  # wood grain
        yy = np.arange(H)[:, None]
        desk = desk * (1 + 0.15 * np.sin(yy / rng.uniform(3, 9) + rng.normal(0, 0.5, (1, W)).cumsum(axis=1) * 0.05))
    paper_tone = rng.uniform(0.72, 0.96)
    sheetmask = np.zeros((H, W))
    sheetmask[m : m + sheet_h, m : m + sheet_w] = 1
    inkfull = np.zeros((H, W))
    inkfull[m : m + sheet_h, m : m + sheet_w] = inkp
    ang = rng.uniform(-6, 6)
    sheetmask = ndi.rotate(sheetmask, ang, reshape=False, order=1)
    inkfull = ndi.rotate(inkfull, ang, reshape=False, order=1)
    dy, dx = int(rng.integers(-m // 2, m // 2 + 1)), int(rng.integers(-m // 2, m // 2 + 1))
    sheetmask = np.roll(sheetmask, (dy, dx), (0, 1))
    inkfull = np.roll(inkfull, (dy, dx), (0, 1))
    strength = rng.uniform(0.75, 1.0)
    g = desk * (1 - sheetmask) + paper_tone * sheetmask
    g = g * (1 - strength * inkfull) + 0.08 * strength * inkfull
    return _phone_jpeg((g * _light(H, W, rng))[..., None] * np.array([1.0, 0.97, 0.92]), rng)
