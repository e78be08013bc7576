"""Handwritten-looking digits from a model of the moving pen: extra *training* images.

The UCI writers (43 people, 8 x 8 block counts) leave out styles many people use - a 2 with a loop at
its foot, a 6 whose loop is small under a long stem, a 9 with a curved tail, a 4 closed at the top, a
7 with a bar or a hooked start - and their blocks keep no stroke shape. This generator writes each
digit as one of several styles per class: a list of pen *targets* per stroke. Between targets the pen
moves as a damped mass pulled towards the next target (it rounds corners by its own inertia, and how
much depends on its stiffness and damping, drawn per writer), the targets themselves wander (each
writer's proportions, slant, aspect and rotation, plus per-point jitter), and the ink is laid by stamping
discs whose radius follows the pen's pressure along the path. Output: 64 px light ink on black, like
``font_digits``, so ``training/uploads.py`` turns them into uploads like every other training image.

Only training uses them. The robustness suite's ``drawn`` digits come from ``drawn_digits.py`` (another
generator: control points smoothed by corner cutting, drawn with Pillow's lines), and the real
handwriting check is MNIST (``training/data/mnist.py``), which no training code reads.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

SOURCE = "training/data/hand_digits.py (generated: pen-motion model, several styles per digit)"
SIZE = 64

Targets = list[tuple[float, float]]


def _ring(cx: float, cy: float, rx: float, ry: float, start: float, turn: float, n: int = 12) -> Targets:
    """Targets around an ellipse from angle ``start`` through ``turn`` degrees (0 = right, 90 = down;
    a negative turn runs counter-clockwise on screen)."""
    return [
        (cx + rx * math.cos(math.radians(start + turn * k / n)), cy + ry * math.sin(math.radians(start + turn * k / n)))
        for k in range(n + 1)
    ]


# digit -> styles; a style is a list of strokes, a stroke a list of pen targets in a unit box (x right, y down)
STYLES: dict[int, list[list[Targets]]] = {
    0: [
        [_ring(0.5, 0.5, 0.3, 0.46, -100, -370)],  # counter-clockwise from the top, closing past the start
        [_ring(0.5, 0.5, 0.34, 0.44, -60, -340)],  # left open at the top right
    ],
    1: [
        [[(0.52, 0.02), (0.5, 0.98)]],
        [[(0.3, 0.22), (0.55, 0.02), (0.52, 0.98)]],
        [[(0.32, 0.2), (0.56, 0.02), (0.52, 0.96)], [(0.28, 0.97), (0.76, 0.97)]],
    ],
    2: [
        [_ring(0.5, 0.28, 0.32, 0.24, 190, 190) + [(0.5, 0.66), (0.12, 0.96), (0.9, 0.95)]],
        # the looped foot: the diagonal curls into a small loop before the base
        [_ring(0.5, 0.28, 0.32, 0.24, 185, 195) + [(0.4, 0.76), (0.16, 0.9), (0.22, 0.99), (0.34, 0.86),
                                                       (0.56, 0.93), (0.9, 0.97)]],
        # a swan's neck: a long S-like descent and a wavy base
        [_ring(0.46, 0.26, 0.3, 0.22, 200, 170) + [(0.62, 0.55), (0.3, 0.86), (0.16, 0.96), (0.52, 0.88),
                                                       (0.9, 0.98)]],
        [[(0.14, 0.12), (0.6, 0.02), (0.86, 0.2), (0.7, 0.45), (0.14, 0.96), (0.88, 0.96)]],  # angular
    ],
    3: [
        [_ring(0.48, 0.26, 0.3, 0.22, 200, 250) + _ring(0.48, 0.72, 0.34, 0.26, -90, 240)],
        [[(0.14, 0.04), (0.84, 0.04), (0.44, 0.4)] + _ring(0.48, 0.7, 0.36, 0.28, -80, 230)],
    ],
    4: [
        [[(0.36, 0.02), (0.12, 0.62), (0.92, 0.62)], [(0.68, 0.22), (0.66, 0.98)]],  # open
        [[(0.7, 0.98), (0.68, 0.02), (0.1, 0.64), (0.92, 0.64)]],  # closed, one stroke
        [[(0.22, 0.02), (0.16, 0.58), (0.84, 0.56)], [(0.72, 0.02), (0.7, 0.98)]],  # open, stem through the bar
    ],
    5: [
        [[(0.28, 0.04), (0.24, 0.44)] + _ring(0.46, 0.68, 0.34, 0.27, -130, 270), [(0.28, 0.04), (0.84, 0.03)]],
        [[(0.84, 0.04), (0.3, 0.04), (0.26, 0.46)] + _ring(0.46, 0.7, 0.34, 0.26, -120, 260)],
    ],
    6: [
        [[(0.7, 0.02), (0.4, 0.3), (0.24, 0.62)] + _ring(0.5, 0.74, 0.26, 0.22, 180, -360)],  # loop of half the height
        [[(0.66, 0.02), (0.42, 0.42), (0.3, 0.78)] + _ring(0.48, 0.84, 0.18, 0.14, 180, -350)],  # small loop, long stem
        [_ring(0.8, 0.6, 0.56, 0.58, -115, -60, 5) + _ring(0.52, 0.72, 0.3, 0.25, 180, -370)],  # curved back
    ],
    7: [
        [[(0.12, 0.06), (0.88, 0.06), (0.42, 0.98)]],
        [[(0.12, 0.06), (0.88, 0.06), (0.44, 0.98)], [(0.3, 0.52), (0.76, 0.5)]],  # barred
        [[(0.12, 0.16), (0.16, 0.04), (0.86, 0.06), (0.6, 0.5), (0.5, 0.98)]],  # hooked start, bent stem
    ],
    8: [
        [_ring(0.5, 0.26, 0.26, 0.22, -20, -320) + [(0.5, 0.5)] + _ring(0.5, 0.74, 0.3, 0.24, -90, 360)
         + [(0.72, 0.12)]],  # one stroke: S down, back up
        [_ring(0.5, 0.26, 0.24, 0.22, 90, 360), _ring(0.5, 0.72, 0.3, 0.25, -90, 360)],  # two loops
    ],
    9: [
        [_ring(0.48, 0.28, 0.3, 0.24, 0, -360) + [(0.76, 0.6), (0.74, 0.98)]],  # straight stem
        [_ring(0.48, 0.28, 0.3, 0.24, 10, -360) + [(0.74, 0.56), (0.6, 0.9), (0.34, 0.98)]],  # curved tail
        [_ring(0.46, 0.3, 0.26, 0.26, -10, -360) + [(0.72, 0.7), (0.7, 0.98)]],  # round head
    ],
}  # fmt: skip


def _pen_path(targets: np.ndarray, rng: np.random.Generator, stiffness: float, damping: float) -> np.ndarray:
    """The pen's positions: a damped mass pulled towards each target in turn, moving on to the next when
    close (a writer does not stop at each point); starts at the first target."""
    pos, vel = targets[0].copy(), np.zeros(2)
    reach = rng.uniform(0.04, 0.1)
    out = [pos.copy()]
    dt = 0.01
    for goal in targets[1:]:
        for _ in range(400):
            vel += dt * (stiffness * (goal - pos) - damping * vel)
            pos = pos + dt * vel
            out.append(pos.copy())
            if np.linalg.norm(goal - pos) < reach:
                break
    # land on the last target: the stroke ends where the writer aimed
    tail = out[-1]
    out += [tail + (targets[-1] - tail) * k / 4 for k in range(1, 5)]
    return _even(np.asarray(out), 0.004)


def _even(path: np.ndarray, step: float) -> np.ndarray:
    """The path resampled every ``step`` of its length: the ink is laid evenly, whatever the pen's speed."""
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    at = np.concatenate([[0.0], np.cumsum(seg)])
    where = np.linspace(0.0, at[-1], max(2, int(at[-1] / step) + 1))
    return np.stack([np.interp(where, at, path[:, 0]), np.interp(where, at, path[:, 1])], 1)


def _writer(rng: np.random.Generator) -> dict:
    """One writer's habits: slant, aspect, rotation, jitter, pen dynamics, pen width and pressure."""
    return {
        "slant": rng.uniform(-0.35, 0.2),  # x shift per unit height (positive leans right)
        "aspect": rng.uniform(0.55, 1.3),
        "angle": math.radians(rng.uniform(-10, 10)),
        "jitter": rng.uniform(0.0, 0.06),
        "stiffness": rng.uniform(600, 2500),
        "damping": rng.uniform(35, 90),
        "width": rng.uniform(0.03, 0.11),  # of the digit's height
        "pressure": rng.uniform(0.0, 0.5),  # how much the width swells and thins along a stroke
    }


def write_digit(digit: int, rng: np.random.Generator) -> np.ndarray:
    """One handwritten ``digit``: SIZE x SIZE uint8, light ink on black, the ink box centred with a margin."""
    style = STYLES[digit][rng.integers(len(STYLES[digit]))]
    w = _writer(rng)
    c, s = math.cos(w["angle"]), math.sin(w["angle"])
    paths = []
    for stroke in style:
        t = np.asarray(stroke, np.float64) + rng.normal(0, w["jitter"], (len(stroke), 2))
        t[:, 0] = 0.5 + (t[:, 0] - 0.5) * w["aspect"] + w["slant"] * (0.5 - t[:, 1])
        t = (t - 0.5) @ np.array([[c, -s], [s, c]]).T + 0.5
        paths.append(_pen_path(t, rng, w["stiffness"], w["damping"]))
    return _render(paths, w, rng)


def _render(paths: list[np.ndarray], w: dict, rng: np.random.Generator) -> np.ndarray:
    """Stamp discs along each path at 4x, radius following the pressure; crop to the ink, pad, reduce."""
    pts = np.concatenate(paths)
    lo, hi = pts.min(0), pts.max(0)
    height = max(hi[1] - lo[1], 1e-3)
    scale = 4 * SIZE * 0.8 / max(height, hi[0] - lo[0])
    radius = 0.5 * w["width"] * height * scale
    side = 4 * SIZE
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    offset = (side - (hi - lo) * scale) / 2 - lo * scale
    for path in paths:
        xy = path * scale + offset
        phase, freq = rng.uniform(0, 2 * math.pi), rng.uniform(0.5, 2.0)
        along = np.linspace(0, 1, len(xy))
        r = radius * (1 + w["pressure"] * np.sin(phase + 2 * math.pi * freq * along))
        r[:3] *= np.linspace(0.6, 1, 3)  # the pen lands and lifts
        r[-3:] *= np.linspace(1, 0.6, 3)
        for (x, y), rr in zip(xy, np.maximum(r, 1.0)):
            draw.ellipse((x - rr, y - rr, x + rr, y + rr), fill=255)
    return np.asarray(canvas.resize((SIZE, SIZE), Image.Resampling.BOX))


def hand_digits(per_class: int = 150, seed: int = 31) -> tuple[list[np.ndarray], np.ndarray, dict]:
    """``per_class`` handwritten drawings of each digit (class order), labels, and a description for the card."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for d in range(10):
        for _ in range(per_class):
            images.append(write_digit(d, rng))
            labels.append(d)
    styles = {str(d): len(STYLES[d]) for d in range(10)}
    return images, np.asarray(labels, np.int64), {"per_class": per_class, "seed": seed, "styles_per_digit": styles}
