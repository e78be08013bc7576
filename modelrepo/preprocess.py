"""Card-driven image preprocessing, shared by training, evaluation and the service.

One pipeline: colour mode -> resize policy -> scale to the value range -> mean/std -> NCHW.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from modelrepo.card import InputSpec

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


def _target_size(size: tuple[int, int], spec: InputSpec) -> tuple[int, int] | None:
    """The (width, height) the image is resized to before any crop, or None to keep it."""
    if spec.resize == "none":
        return None
    assert isinstance(spec.width, int) and isinstance(spec.height, int)
    if spec.resize == "stretch":
        return spec.width, spec.height
    # shorter_side_center_crop: the shorter side becomes crop_size / crop_fraction
    w, h = size
    short = round(min(spec.width, spec.height) / spec.crop_fraction)
    scale = short / min(w, h)
    return max(spec.width, round(w * scale)), max(spec.height, round(h * scale))


def prepare_image(img: Image.Image, spec: InputSpec) -> Image.Image:
    """Convert to the card's colour mode and apply its resize policy (PIL in, PIL out)."""
    target = _target_size(img.size, spec)
    if target is not None and img.format == "JPEG":
        # Draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale: much less work when downscaling.
        img.draft(spec.color_mode, target)
    if img.mode != spec.color_mode:
        img = img.convert(spec.color_mode)
    if target is not None and img.size != target:
        img = img.resize(target, _RESAMPLE[spec.interpolation])
    if spec.resize == "shorter_side_center_crop":
        assert isinstance(spec.width, int) and isinstance(spec.height, int)
        w, h = img.size
        left, top = (w - spec.width) // 2, (h - spec.height) // 2
        img = img.crop((left, top, left + spec.width, top + spec.height))
    return img


def normalize(pixels: np.ndarray, spec: InputSpec, max_value: float = 255.0) -> np.ndarray:
    """(H, W, C) or (N, H, W, C) integer pixels -> float32 normalised, channels last."""
    lo, hi = spec.value_range
    x = pixels.astype(np.float32) * np.float32((hi - lo) / max_value) + np.float32(lo)
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return (x - mean) / std


def preprocess(images: Sequence[Image.Image | np.ndarray], spec: InputSpec) -> np.ndarray:
    """Images (PIL, or uint8 arrays H x W [x C]) -> float32 batch (N, C, H, W) for the network.

    With ``resize="none"`` all images must share one size (the caller batches by size).
    """
    arrays = []
    for im in images:
        if isinstance(im, np.ndarray):
            if im.dtype != np.uint8:
                raise ValueError(f"array images must be uint8, got {im.dtype}")
            im = Image.fromarray(im)
        px = np.asarray(prepare_image(im, spec))
        arrays.append(px[..., None] if px.ndim == 2 else px)
    if len({a.shape for a in arrays}) > 1:
        raise ValueError("images of different sizes cannot share a batch with resize='none'")
    batch = normalize(np.stack(arrays), spec)  # (N, H, W, C)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))  # (N, C, H, W)
