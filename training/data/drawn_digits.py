"""Pen-drawn digits, made by code that never feeds training: the robustness suite's "drawn" set.

Each digit is a few strokes in a unit box (x right, y down), with the variants people write (a 1
with or without its flag and base, an open or a closed 4, a 7 with or without its bar). A drawing
gets its own slant, rotation, width, wobble of every control point and pen width, is smoothed by
corner cutting and drawn anti-aliased with Pillow on a canvas of random size and margins, as ink
on paper (dark on light) or as light ink on a dark canvas. Deterministic by seed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

Stroke = list[tuple[float, float]]


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 24) -> Stroke:
    """Points on an ellipse from angle a0 to a1 (degrees, 0 = right, 90 = down)."""
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a))) for a in np.linspace(a0, a1, n)]


# digit -> list of styles; a style is a list of strokes
TEMPLATES: dict[int, list[list[Stroke]]] = {
    0: [[_arc(0.5, 0.5, 0.32, 0.45, -90, 275)]],
    1: [
        [[(0.55, 0.04), (0.47, 0.96)]],
        [[(0.3, 0.25), (0.56, 0.04), (0.5, 0.96)]],
        [[(0.3, 0.25), (0.56, 0.04), (0.5, 0.94)], [(0.3, 0.95), (0.72, 0.95)]],
    ],
    2: [
        [_arc(0.5, 0.3, 0.3, 0.25, 200, 360) + [(0.75, 0.45), (0.18, 0.95), (0.85, 0.95)]],
        [_arc(0.5, 0.3, 0.3, 0.25, 190, 380) + [(0.2, 0.92), (0.5, 0.85), (0.88, 0.95)]],
    ],
    3: [
        [_arc(0.48, 0.27, 0.3, 0.22, 210, 450) + _arc(0.48, 0.72, 0.34, 0.24, -90, 150)],
        [[(0.2, 0.06), (0.8, 0.06), (0.45, 0.42)] + _arc(0.48, 0.7, 0.34, 0.26, -80, 160)],
    ],
    4: [
        [[(0.66, 0.96), (0.66, 0.04), (0.1, 0.66), (0.9, 0.66)]],
        [[(0.25, 0.04), (0.16, 0.6), (0.88, 0.6)], [(0.68, 0.28), (0.66, 0.97)]],
    ],
    5: [
        [[(0.8, 0.06), (0.28, 0.06), (0.24, 0.46)] + _arc(0.48, 0.68, 0.33, 0.27, -120, 150)],
        [[(0.26, 0.06), (0.22, 0.45)] + _arc(0.48, 0.68, 0.33, 0.27, -120, 150), [(0.26, 0.06), (0.82, 0.06)]],
    ],
    6: [
        [[(0.72, 0.05), (0.35, 0.35)] + _arc(0.5, 0.7, 0.3, 0.26, 180, 540)],
        [_arc(0.72, 0.55, 0.5, 0.5, 250, 180, 10) + _arc(0.5, 0.72, 0.28, 0.24, 180, 530)],
    ],
    7: [
        [[(0.14, 0.07), (0.86, 0.07), (0.4, 0.96)]],
        [[(0.14, 0.12), (0.14, 0.06), (0.86, 0.07), (0.45, 0.96)], [(0.32, 0.52), (0.78, 0.5)]],
    ],
    8: [
        [_arc(0.5, 0.27, 0.24, 0.22, 90, 450) + _arc(0.5, 0.71, 0.3, 0.24, -90, 270)],
        [_arc(0.5, 0.26, 0.26, 0.22, 60, 420) + _arc(0.5, 0.72, 0.28, 0.24, -80, 270)],
    ],
    9: [
        [_arc(0.5, 0.3, 0.27, 0.24, 0, 370) + [(0.76, 0.4), (0.68, 0.96)]],
        [_arc(0.5, 0.3, 0.27, 0.24, 10, 370) + [(0.77, 0.35), (0.72, 0.7), (0.45, 0.96)]],
    ],
}


def _smooth(points: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Chaikin corner cutting: a hand's curve through the control points."""
    for _ in range(iterations):
        if len(points) < 3:
            return points
        q = 0.75 * points[:-1] + 0.25 * points[1:]
        r = 0.25 * points[:-1] + 0.75 * points[1:]
        points = np.concatenate([points[:1], np.stack([q, r], 1).reshape(-1, 2), points[-1:]])
    return points


PEN = (0.05, 0.14)  # pen width as a share of the digit's height: felt tip to marker
THIN_PEN = (0.01, 0.03)  # a fine pen or a 1-3 px brush on a large canvas


def draw_digit(digit: int, rng: np.random.Generator, pen_range: tuple[float, float] = PEN) -> Image.Image:
    """One drawing of ``digit``: a grayscale PIL image of random size, ink and paper; the pen's width is
    drawn from ``pen_range`` (shares of the digit's height)."""
    style = TEMPLATES[digit][rng.integers(len(TEMPLATES[digit]))]
    slant = rng.uniform(-0.3, 0.15)
    angle = math.radians(rng.uniform(-8, 8))
    aspect = rng.uniform(0.55, 1.0)
    c, s = math.cos(angle), math.sin(angle)
    box = 200.0
    strokes = []
    for stroke in style:
        p = np.asarray(stroke, np.float64) + rng.normal(0, 0.025, (len(stroke), 2))
        p[:, 0] = (p[:, 0] - 0.5) * aspect + slant * (0.5 - p[:, 1])
        p[:, 1] = p[:, 1] - 0.5
        p = p @ np.array([[c, s], [-s, c]])
        strokes.append(_smooth(p) * box)
    pts = np.concatenate(strokes)
    pen = rng.uniform(*pen_range) * box
    margin = rng.uniform(0.1, 0.6) * box
    lo = pts.min(0) - margin - pen
    size = np.ceil(pts.max(0) + margin + pen - lo).astype(int)
    canvas = Image.new("L", (int(size[0]) * 2, int(size[1]) * 2), 0)  # drawn at 2x, then reduced: anti-aliased
    draw = ImageDraw.Draw(canvas)
    for p in strokes:
        q = [tuple(v) for v in ((p - lo) * 2)]
        draw.line(q, fill=255, width=max(1, round(pen * 2)), joint="curve")
        for x, y in (q[0], q[-1]):
            r = pen
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    side = int(rng.integers(48, 320))
    scale = side / max(canvas.size)
    img = canvas.resize((max(8, round(canvas.width * scale)), max(8, round(canvas.height * scale))), Image.LANCZOS)
    a = np.asarray(img, np.float64) / 255.0
    paper, ink = (rng.uniform(200, 255), rng.uniform(0, 70)) if rng.random() < 0.6 else (rng.uniform(0, 40), 255)
    out = paper + (ink - paper) * a + rng.normal(0, rng.uniform(0, 4), a.shape)
    return Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8), "L")


def drawn_digits(
    per_class: int = 30, seed: int = 1234, pen_range: tuple[float, float] = PEN
) -> tuple[list[Image.Image], np.ndarray]:
    """``per_class`` drawings of each digit 0-9, in class order."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for d in range(10):
        for _ in range(per_class):
            images.append(draw_digit(d, rng, pen_range))
            labels.append(d)
    return images, np.asarray(labels, np.int64)


def write_examples(out: Path, seed: int = 2026) -> list[Path]:
    """Example uploads for ``/classify`` (``examples/digits``): pen-drawn digits saved as users save them -
    white ink on black, black ink on white paper, black ink on a transparent canvas (RGBA whose
    transparent pixels are black, as web canvases export), and a phone photo (JPEG) of a digit on squared
    paper under a lamp. File names carry the true digit."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for digit, form in [(7, "white_on_black"), (2, "black_on_white"), (4, "transparent_canvas"), (3, "black_on_white")]:
        img = draw_digit(digit, rng)
        a = np.asarray(img, np.float64)
        ink = a if np.median(a) < 128 else 255.0 - a  # light ink, 0 background
        ink = np.clip((ink - np.percentile(ink, 5)) * 255.0 / max(np.ptp(ink), 1.0), 0, 255)
        if form == "white_on_black":
            im = Image.fromarray(np.round(ink).astype(np.uint8), "L")
        elif form == "black_on_white":
            im = Image.fromarray(np.round(255.0 - ink).astype(np.uint8), "L")
        else:
            alpha = np.round(ink).astype(np.uint8)
            im = Image.fromarray(np.dstack([np.zeros(alpha.shape + (3,), np.uint8), alpha]), "RGBA")
        path = out / f"digit_{digit}_{form}.png"
        im.save(path)
        written.append(path)
    from training.data.paper_photo import photograph  # a phone photo of squared paper under a lamp

    path = out / "digit_5_photo_squared_paper.jpg"
    path.write_bytes(photograph(draw_digit(5, rng), rng, "squared"))
    return written + [path]
