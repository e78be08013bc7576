"""Dead-leaves images for denoiser training (Achddou, Gousseau & Ladjal, 2021: a network trained
on dead-leaves images alone comes close to one trained on natural images).

Opaque "leaves" fall on the canvas one after another; the first to fall stays in front. Leaf sizes
follow the scale-invariant law p(r) ~ r^-alpha between ``r_min`` and ``r_max`` (alpha near 3 gives
natural images' power spectrum); shapes are disks, ellipses and rotated rectangles with
anti-aliased edges. Each leaf is flat, shaded by a gradient, or textured (a sinusoidal grating or
1/f noise), and the whole image may be blurred (depth of field). Colours are drawn from the pixels
of natural images given (their colour distribution), else uniformly. Rendered front to back:
every pixel keeps a transmittance, and a leaf only shows where the ones in front let it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter


@dataclass(frozen=True)
class LeavesConfig:
    size: int = 256
    alpha: tuple[float, float] = (2.5, 3.5)  # range of the size-law exponent, one per image
    r_min: float = 1.0
    r_max: tuple[float, float] = (0.15, 0.8)  # range of the largest radius, in image sizes
    textured: float = 0.5  # share of textured leaves
    shaded: float = 0.3  # share of leaves with a linear gradient
    blur: float = 0.4  # share of images blurred, sigma ~ U(0.3, 1.5) px
    max_leaves: int = 3000


def _radius(rng: np.random.Generator, alpha: float, r_min: float, r_max: float) -> float:
    """Inverse-CDF draw from p(r) ~ r^-alpha on [r_min, r_max]."""
    a = 1 - alpha
    u = rng.random()
    return float((r_min**a + u * (r_max**a - r_min**a)) ** (1 / a))


def _coverage(rng, r: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of one leaf (centred at 0, 0) over the pixel grid yy, xx."""
    kind = rng.integers(3)
    theta = rng.random() * np.pi
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy
    if kind == 0:  # disk
        d = np.hypot(u, v) - r
    elif kind == 1:  # ellipse, aspect up to 1:3 (signed distance approximated by scaling)
        e = 1 + 2 * rng.random()
        d = (np.hypot(u, v * e) - r) / np.sqrt(e)
    else:  # rectangle
        e = 1 + 2 * rng.random()
        d = np.maximum(np.abs(u) - r, np.abs(v) - r / e)
    return np.clip(0.5 - d, 0.0, 1.0)


def _texture(rng, yy: np.ndarray, xx: np.ndarray, r: float) -> np.ndarray:
    """A zero-mean modulation for one leaf: a grating or smoothed noise."""
    if rng.random() < 0.5:
        period = 2 + rng.random() * max(2.0, r)
        theta = rng.random() * np.pi
        phase = rng.random() * 2 * np.pi
        return np.sin(2 * np.pi * (np.cos(theta) * xx + np.sin(theta) * yy) / period + phase)
    noise = rng.standard_normal(yy.shape)
    noise = gaussian_filter(noise, 0.5 + 2 * rng.random())
    return noise / (noise.std() + 1e-6)


def dead_leaves(rng: np.random.Generator, cfg: LeavesConfig, palette: np.ndarray | None = None) -> np.ndarray:
    """One (size, size, 3) float32 image in [0, 1]. ``palette``: (N, 3) colours to draw from."""
    n = cfg.size
    alpha = rng.uniform(*cfg.alpha)
    r_max = rng.uniform(*cfg.r_max) * n
    img = np.zeros((n, n, 3), np.float32)
    trans = np.ones((n, n), np.float32)  # how much of each pixel the leaves in front let through
    for i in range(cfg.max_leaves):
        r = _radius(rng, alpha, cfg.r_min, r_max)
        if i < cfg.max_leaves // 2:
            cy, cx = rng.uniform(-r, n + r, 2)
        else:  # late leaves fall where the canvas still shows, so it fills without a flat background
            if i % 50 == 0:
                open_y, open_x = np.nonzero(trans > 0.5)
                if len(open_y) == 0:
                    break
            j = rng.integers(len(open_y))
            cy, cx = open_y[j] + rng.random(), open_x[j] + rng.random()
        y0, y1 = max(0, int(cy - 1.5 * r) - 1), min(n, int(cy + 1.5 * r) + 2)
        x0, x1 = max(0, int(cx - 1.5 * r) - 1), min(n, int(cx + 1.5 * r) + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        t = trans[y0:y1, x0:x1]
        if t.max() < 1e-3:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        yy, xx = yy - cy, xx - cx
        cov = _coverage(rng, r, yy, xx)
        colour = palette[rng.integers(len(palette))] if palette is not None else rng.random(3)
        leaf = np.broadcast_to(colour.astype(np.float32), (*cov.shape, 3)).copy()
        k = rng.random()
        if k < cfg.textured:
            leaf += (0.05 + 0.25 * rng.random()) * _texture(rng, yy, xx, r)[..., None] * (0.3 + rng.random(3))
        elif k < cfg.textured + cfg.shaded:
            g = rng.standard_normal(2) * 0.3 / max(r, 1.0)
            leaf += (g[0] * yy + g[1] * xx)[..., None]
        w = (t * cov)[..., None]
        img[y0:y1, x0:x1] += w * leaf
        trans[y0:y1, x0:x1] = t * (1 - cov)
        if i % 50 == 0 and trans.mean() < 2e-3:
            break
    img += trans[..., None] * (palette[rng.integers(len(palette))] if palette is not None else rng.random(3))
    if rng.random() < cfg.blur:
        s = rng.uniform(0.3, 1.5)
        img = gaussian_filter(img, (s, s, 0))
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def palette_from(images: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) colours sampled from the pixels of (H, W, 3) images."""
    picks = []
    for _ in range(n):
        im = images[int(rng.integers(len(images)))]
        picks.append(im[int(rng.integers(im.shape[0])), int(rng.integers(im.shape[1]))])
    return np.asarray(picks, np.float32)


def _one(args: tuple[int, int, int]) -> np.ndarray:
    seed, i, size = args
    from training.data.natural import training_images

    rng = np.random.default_rng([seed, i])
    palette = palette_from(training_images(gray=False), 4096, np.random.default_rng([seed, i, 1]))
    return np.round(dead_leaves(rng, LeavesConfig(size=size), palette) * 255).astype(np.uint8)


def dead_leaves_pool(
    n: int, gray: bool, seed: int = 0, size: int = 256, cache: str | None = "runs/cache", progress: bool = True
) -> list[np.ndarray]:
    """``n`` dead-leaves images, float32 in [0, 1] ((H, W) gray: the colour ones' luminance, else
    (H, W, 3)); image i depends only on (seed, i), so the pool is the same however it is computed.
    Cached as uint8 RGB under ``cache``. Colours come from the natural training images' pixels."""
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path

    from tqdm.auto import tqdm

    path = Path(cache) / f"dead_leaves_s{seed}_n{n}_{size}.npy" if cache else None
    if path is not None and path.exists():
        arr = np.load(path)  # our own cache file (plain uint8 array, no pickle)
    else:
        jobs = [(seed, i, size) for i in range(n)]
        if n >= 8:
            with ProcessPoolExecutor(2) as pool:
                arr = np.stack(list(tqdm(pool.map(_one, jobs, chunksize=4), total=n, disable=not progress,
                                         desc="dead leaves")))  # fmt: skip
        else:
            arr = np.stack([_one(j) for j in jobs])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path.with_suffix(".tmp.npy"), arr)
            path.with_suffix(".tmp.npy").replace(path)
    x = arr.astype(np.float32) / 255
    if gray:
        x = x @ np.array([0.2125, 0.7154, 0.0721], np.float32)  # as skimage.color.rgb2gray
    return list(x)
