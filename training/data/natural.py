"""Natural images that ship inside packages, for denoising: scikit-image's ``skimage.data`` and
scikit-learn's sample images. The held-out images never enter training: ``camera`` and ``astronaut``
(the headline pair) and a second set of six natural and medical images; images larger than 512 px
are evaluated on their central 512 x 512 crop. Users can pass a folder of clean images instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# training: natural photos, textures, text and microscopy (``cat`` is ``chelsea``: listed once)
TRAIN_NAMES = ["brick", "cell", "chelsea", "clock", "grass", "gravel", "page", "text"]
SKLEARN_TRAIN = ["china", "flower"]  # sklearn.datasets.load_sample_images
HEADLINE = ["camera", "astronaut"]
SECOND_SET = ["coffee", "rocket", "immunohistochemistry", "retina", "hubble_deep_field", "motorcycle", "coins", "moon"]
VALIDATION = ["microaneurysms", "shepp_logan_phantom", "colorwheel"]  # monitoring during training only
COLOUR_TEST = ["astronaut", "coffee", "rocket", "immunohistochemistry", "retina", "hubble_deep_field", "motorcycle"]
SOURCE = "skimage.data + sklearn.datasets.load_sample_images"


def _to_float(im: np.ndarray, gray: bool) -> np.ndarray:
    x = im.astype(np.float32) / (255.0 if im.dtype == np.uint8 else max(1.0, float(im.max())))
    if x.ndim == 3:
        x = x[..., :3]
        if gray:
            x = x @ np.array([0.2125, 0.7154, 0.0721], np.float32)  # as skimage.color.rgb2gray
    elif not gray:
        x = np.repeat(x[..., None], 3, axis=2)
    return np.ascontiguousarray(x, dtype=np.float32)


def bundled(name: str) -> np.ndarray:
    """One bundled image by name, as shipped (``motorcycle``: the left view of ``stereo_motorcycle``)."""
    from skimage import data

    if name == "motorcycle":
        return data.stereo_motorcycle()[0]
    if name in SKLEARN_TRAIN:
        from sklearn.datasets import load_sample_images

        return load_sample_images().images[SKLEARN_TRAIN.index(name)]
    return getattr(data, name)()


def _centre(x: np.ndarray, size: int = 512) -> np.ndarray:
    y0, x0 = max(0, (x.shape[0] - size) // 2), max(0, (x.shape[1] - size) // 2)
    return np.ascontiguousarray(x[y0 : y0 + size, x0 : x0 + size])


def training_images(gray: bool = True, folder: str | None = None) -> list[np.ndarray]:
    """Float32 images in [0, 1]: (H, W) when gray, else (H, W, 3)."""
    if folder:
        files = sorted(
            p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff")
        )
        if not files:
            raise ValueError(f"no images in {folder}")
        return [_to_float(np.asarray(Image.open(f).convert("L" if gray else "RGB")), gray) for f in files]
    return [_to_float(bundled(n), gray) for n in TRAIN_NAMES + SKLEARN_TRAIN]


def validation_images(gray: bool = True) -> list[np.ndarray]:
    return [_to_float(bundled(n), gray) for n in VALIDATION]


def test_images(gray: bool = True, second_set: bool = False) -> dict[str, np.ndarray]:
    """Held-out images by name (gray: every image in luminance, suffixed ``_gray`` when it was colour;
    colour: only the colour ones). ``second_set=False``: the headline pair only."""
    names = HEADLINE + (SECOND_SET if second_set else [])
    out = {}
    for n in names:
        im = bundled(n)
        if gray:
            out[n + ("_gray" if im.ndim == 3 else "")] = _centre(_to_float(im, True))
        elif n in COLOUR_TEST:
            out[n] = _centre(_to_float(im, False))
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
