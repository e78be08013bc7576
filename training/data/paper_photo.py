"""Digits photographed on paper with a phone: the robustness suite's ``paper_photo`` set. Never feeds training.

A pen-drawn digit (``drawn_digits.py``) becomes ink on a sheet of paper: paper of a random tone (warm or
cool white, recycled gray), plain, ruled (lines across, bluish, evenly spaced) or squared (a grid); ink
black, blue or pencil gray at its own strength; lit by a lamp from one side (a linear fall-off of 15-50 %)
and darkened towards the corners (vignetting); sensor noise; saved as an RGB JPEG at quality 70-95, as
phones save photos. Deterministic by the generator passed in.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

INKS = {"black": (0.08, 0.08, 0.1), "blue": (0.1, 0.15, 0.55), "pencil": (0.35, 0.35, 0.38)}


def _lines(n: int, period: float, width: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) weights 0..1: evenly spaced lines ``width`` px wide every ``period`` px, anti-aliased."""
    pos = (np.arange(n) + 0.5 - rng.uniform(0, period)) % period
    return np.clip(width / 2 + 0.5 - np.minimum(pos, period - pos), 0, 1)


def photograph(digit: Image.Image, rng: np.random.Generator, kind: str | None = None) -> bytes:
    """A drawn digit (L) as a JPEG photo of the paper it was written on (``kind``: plain / ruled / squared
    paper, random when None)."""
    a = np.asarray(digit, np.float64) / 255.0
    ink = 1.0 - a if a.mean() > 0.5 else a  # how much ink covers each pixel, whatever the drawing's polarity
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
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    t = rng.uniform(0, 2 * np.pi)
    lamp = 1 - rng.uniform(0.15, 0.5) * ((xx - 0.5) * np.cos(t) + (yy - 0.5) * np.sin(t) + 0.5)
    vignette = 1 - rng.uniform(0, 0.3) * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2) * 2
    name = str(rng.choice(list(INKS), p=[0.45, 0.4, 0.15]))
    strength = rng.uniform(0.75, 1.0) if name != "pencil" else rng.uniform(0.5, 0.8)
    cover = (ink * strength)[..., None]
    rgb = (paper * (1 - cover) + np.asarray(INKS[name]) * cover) * (lamp * vignette)[..., None]
    rgb = rgb + rng.normal(0, rng.uniform(0.005, 0.025), rgb.shape)
    out = io.BytesIO()
    Image.fromarray(np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8), "RGB").save(
        out, "JPEG", quality=int(rng.integers(70, 96))
    )
    return out.getvalue()
