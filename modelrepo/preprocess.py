"""Card-driven image preprocessing, shared by training, evaluation and the service.

One pipeline: colour mode -> resize policy -> scale to the value range -> mean/std -> NCHW.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from modelrepo.card import InputSpec
from modelrepo.framing import FrameNotes, Invert, frame_image

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


TIFF_MAGIC = (b"II*\x00", b"MM\x00*")  # little- and big-endian TIFF
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GRAY_TOLERANCE = 3 / 255  # a plane may differ from the planes' mean by this much (JPEG's chroma rounding)


def equal_planes(x: np.ndarray) -> bool:
    """True when the colour image (H, W, C) in [0, 1] is gray: at 99.9 % of the pixels every plane within
    ``GRAY_TOLERANCE`` of the planes' mean (a gray image saved as RGB)."""
    deviation = np.abs(x - x.mean(axis=2, keepdims=True)).max(axis=2)
    return bool(np.percentile(deviation, 99.9) <= GRAY_TOLERANCE)


_WIDE_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def to_8bit(img: Image.Image) -> Image.Image:
    """16-bit (and 32-bit int/float) grayscale scaled into 8 bits; PIL's own conversion clips at 255.

    ``I;16*`` images, and ``I``/``F`` images with values above 255, are taken on the 0..65535
    scale (divided by 257); ``I``/``F`` images within 0..255 are kept as they are.
    """
    if img.mode not in _WIDE_MODES:
        return img
    a = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16") or (a.size and a.max() > 255):
        a = a / 257.0
    return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")


def prepare_image(img: Image.Image, spec: InputSpec) -> Image.Image:
    """Convert to the card's colour mode and apply its resize policy (PIL in, PIL out)."""
    return prepare_image_noted(img, spec)[0]


def prepare_image_noted(img: Image.Image, spec: InputSpec, invert: Invert = "auto") -> tuple[Image.Image, FrameNotes]:
    """``prepare_image`` that also says what framing did (cards with ``framing``: alpha, polarity, ink box)."""
    if spec.framing is not None:
        framed, notes = frame_image(img, spec.framing, invert)
        assert isinstance(spec.width, int) and isinstance(spec.height, int)
        return framed.resize((spec.width, spec.height), _RESAMPLE[spec.interpolation]), notes
    return _prepare_plain(img, spec), FrameNotes()


def _prepare_plain(img: Image.Image, spec: InputSpec) -> Image.Image:
    target = _target_size(img.size, spec)
    if target is not None and img.format == "JPEG":
        # Draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale: much less work when downscaling.
        img.draft(spec.color_mode, target)
    img = to_8bit(img)
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


def intensities(img: Image.Image | np.ndarray) -> np.ndarray:
    """A single-channel image's own values as float32 (H, W): 16-bit stays 16-bit, colour becomes L."""
    if isinstance(img, np.ndarray):
        a = img if img.ndim == 2 else np.asarray(Image.fromarray(img).convert("L"))
        return a.astype(np.float32)
    if img.mode in _WIDE_MODES or img.mode == "L":
        return np.asarray(img).astype(np.float32)
    return np.asarray(img.convert("L")).astype(np.float32)


def normalize_percentile(x: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(H, W) intensities -> (H, W, 1) float32, percentiles (pmin, pmax) of this array mapped to 0 and 1,
    then the card's mean/std. Call it on the whole image, before any tiling."""
    lo, hi = np.percentile(x, spec.percentiles)
    y = (x - np.float32(lo)) / np.float32(max(hi - lo, 1e-6))
    return ((y - np.float32(spec.mean[0])) / np.float32(spec.std[0]))[..., None].astype(np.float32)


def preprocess(images: Sequence[Image.Image | np.ndarray], spec: InputSpec) -> np.ndarray:
    """Images (PIL, or arrays H x W [x C]) -> float32 batch (N, C, H, W) for the network.

    ``range`` cards take uint8 arrays; ``percentile`` cards any numeric dtype. With
    ``resize="none"`` all images must share one size (the caller batches by size).
    """
    if spec.normalization == "percentile":
        batch = [normalize_percentile(intensities(im), spec) for im in images]  # (H, W, 1) each
        if len({b.shape for b in batch}) > 1:
            raise ValueError("images of different sizes cannot share a batch with resize='none'")
        return np.ascontiguousarray(np.stack(batch).transpose(0, 3, 1, 2))
    arrays = []
    for im in images:
        if isinstance(im, np.ndarray):
            if im.dtype != np.uint8:
                raise ValueError(f"array images must be uint8, got {im.dtype}")
            im = Image.fromarray(im)
        px = np.asarray(prepare_image(im, spec))
        arrays.append(px[..., None] if px.ndim == 2 else px)
    return to_batch(arrays, spec)


def to_batch(pixels: Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Prepared uint8 images (H, W, C), all of one size -> normalised float32 batch (N, C, H, W)."""
    if len({p.shape for p in pixels}) > 1:
        raise ValueError("images of different sizes cannot share a batch with resize='none'")
    batch = normalize(np.stack(pixels), spec)  # (N, H, W, C)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))  # (N, C, H, W)


def pad_to_multiple(x: np.ndarray, multiple: int, mode: str = "reflect") -> np.ndarray:
    """Pad the last two axes (H, W) at the bottom/right to multiples of ``multiple``, mirroring the
    image (edge-repeating when it is too small to mirror), or with zeros (``mode="constant"``: radar
    frames, where the outside is unknown and must not invent echoes). Crop back with [..., :H, :W]."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return x
    if mode == "reflect" and min(h, w) <= max(ph, pw):
        mode = "edge"
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)], mode=mode)


def with_noise_level(x: np.ndarray, sigma_255: float) -> np.ndarray:
    """(N, C, H, W) images in [0, 1] -> (N, C + 1, H, W): the denoisers' noise-level map (sigma / 255
    at every pixel, sigma on the 0-255 scale) as the last channel."""
    n, _, h, w = x.shape
    return np.concatenate([x, np.full((n, 1, h, w), np.float32(sigma_255 / 255), np.float32)], axis=1)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probabilities from logits along ``axis`` (numerically stable)."""
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)
