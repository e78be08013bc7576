"""Natural images that ship inside packages, for denoising: scikit-image's ``skimage.data`` and
scikit-learn's sample images. ``camera`` (grayscale) and ``astronaut`` (colour) are held out for
testing only. Users can pass a folder of clean images instead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TRAIN_NAMES = [
    "brick",
    "cat",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
]
HELD_OUT = {"camera": "camera", "colour": "astronaut"}
SOURCE = "skimage.data + sklearn.datasets.load_sample_images"


def _to_float(im: np.ndarray, gray: bool) -> np.ndarray:
    x = im.astype(np.float32) / 255.0
    if x.ndim == 3:
        x = x[..., :3]
        if gray:
            x = x @ np.array([0.2125, 0.7154, 0.0721], np.float32)  # as skimage.color.rgb2gray
    elif not gray:
        x = np.repeat(x[..., None], 3, axis=2)
    return x


def training_images(gray: bool = True, folder: str | None = None) -> list[np.ndarray]:
    """Float32 images in [0, 1]: (H, W) when gray, else (H, W, 3)."""
    if folder:
        files = sorted(
            p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff")
        )
        if not files:
            raise ValueError(f"no images in {folder}")
        return [_to_float(np.asarray(Image.open(f).convert("L" if gray else "RGB")), gray) for f in files]
    from skimage import data
    from sklearn.datasets import load_sample_images

    images = [getattr(data, n)() for n in TRAIN_NAMES]
    images += list(load_sample_images().images)  # china, flower
    return [_to_float(im, gray) for im in images]


def test_images(gray: bool = True) -> dict[str, np.ndarray]:
    from skimage import data

    out = {"camera": _to_float(data.camera(), True)}
    colour = _to_float(data.astronaut(), gray)
    out["astronaut" + ("_gray" if gray else "")] = colour
    return out


def random_patches(images: list[np.ndarray], n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """n random crops (with random flips / 90-degree turns) -> (n, C, size, size) float32."""
    out = []
    for _ in range(n):
        im = images[int(rng.integers(len(images)))]
        y = int(rng.integers(0, im.shape[0] - size + 1))
        x = int(rng.integers(0, im.shape[1] - size + 1))
        p = im[y : y + size, x : x + size]
        p = np.rot90(p, int(rng.integers(4)))
        if rng.random() < 0.5:
            p = p[:, ::-1]
        out.append(p[None] if p.ndim == 2 else p.transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)
