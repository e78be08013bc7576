"""Denoising: decode keeping bit depth -> predict (tiled, feathered) -> re-encode in the input's depth.

The network sees [0, 1] images plus a noise-level channel (sigma / 255 everywhere). 8-bit and
16-bit images are scaled by 255 and 65,535; float images within [0, 1] are used as they are,
other float ranges are mapped from [min, max] and back. Alpha is set aside and put back untouched.
A gray image stored as RGB (three equal planes, as many tools save gray; JPEG's chroma rounding
allowed) is denoised as the gray image it is and returned as RGB again: its noise is the same in every
plane, which a colour model, trained on independent noise per plane, does not remove (camera at sigma 25:
23.9 dB through the colour model, 29.5 dB as gray).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from modelrepo.denoising import SHUFFLE_STRIDE, blind_level, denoise
from modelrepo.errors import InputError, plain
from modelrepo.noise import estimate_sigma_shuffled
from modelrepo.preprocess import TIFF_MAGIC, equal_planes
from modelrepo.vst import NoiseModel, fit_noise_model, stabilise, stabilised_level, unstabilise
from service.batcher import Timing
from service.images import (
    DECODE_ERRORS,
    deep_png,
    png_exif,
    png_icc,
    png_with_meta,
    split_orientation,
    tiff_file,
)
from service.registry import ModelState


@dataclass
class Decoded:
    x: np.ndarray  # float32 (H, W, C) in [0, 1], C = 1 or 3
    alpha: np.ndarray | None  # untouched alpha plane, in the input's dtype
    dtype: np.dtype
    lo: float  # float inputs outside [0, 1]: the range mapped to [0, 1]
    hi: float
    fmt: str  # "PNG", "TIFF", "JPEG", ...
    planes: int = 0  # colour planes to return when they differ from x's (a gray image stored as RGB: 3)
    pages: int = 1  # images in the file (a multi-page TIFF: the first is denoised)
    lossy: bool = False  # JPEG-like coding (JPEG, HEIC, AVIF, lossy WebP, JPEG in a TIFF): noise measured so
    icc: bytes | None = None  # the file's ICC colour profile (Display P3 in iPhone photos): the answer keeps it
    exif: bytes | None = None  # its EXIF block (camera, exposure, date), orientation taken out: kept in PNGs

    def units(self) -> tuple[float, float]:
        """(offset, span): ``x`` (0-1) back to the file's own values is ``offset + x * span``."""
        if self.dtype == np.uint8:
            return 0.0, 255.0
        if self.dtype == np.uint16:
            return 0.0, 65535.0
        return self.lo, self.hi - self.lo

    def notes(self) -> list[str]:
        """What the answer says about the file itself: lossy coding, pages beyond the first."""
        coding = {"WEBP": "lossy WebP", "HEIF": "HEIC", "AVIF": "AVIF"}.get(self.fmt, "JPEG")
        notes = (
            [f"{coding} input: its block artefacts are not Gaussian noise; expect them to remain"] if self.lossy else []
        )
        if self.pages > 1:
            notes.append(f"the file holds {self.pages} images (pages); the first was denoised")
        return notes


def lossy_webp(data: bytes) -> bool:
    """A WebP file whose image is VP8 (lossy: YUV 4:2:0, transform-coded), not VP8L (lossless): the RIFF
    chunks walked to the first image chunk."""
    at = 12
    while at + 8 <= len(data):
        tag, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
        if tag in (b"VP8 ", b"VP8L"):
            return tag == b"VP8 "
        at += 8 + size + (size & 1)
    return False


def _from_array(a: np.ndarray, fmt: str) -> Decoded:
    if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[2] not in (3, 4):
        a = np.moveaxis(a, 0, -1)  # planar TIFF (C, H, W)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise InputError("unsupported_image", f"expected a gray, gray+alpha, RGB or RGBA image, got shape {a.shape}")
    alpha = a[..., -1].copy() if a.shape[2] in (2, 4) else None
    colour = a[..., :-1] if alpha is not None else a
    if a.dtype == np.uint8:
        x, lo, hi = colour.astype(np.float32) / 255, 0.0, 1.0
    elif a.dtype == np.uint16:
        x, lo, hi = colour.astype(np.float32) / 65535, 0.0, 1.0
    elif a.dtype in (np.float32, np.float64):
        lo, hi = float(np.nanmin(colour)), float(np.nanmax(colour))
        if not np.isfinite([lo, hi]).all():
            raise InputError("invalid_image", "the image contains NaN or infinite values")
        if lo >= 0 and hi <= 1:
            lo, hi = 0.0, 1.0
        x = ((colour - lo) / max(hi - lo, 1e-12)).astype(np.float32)
    else:
        raise InputError("unsupported_bit_depth", f"{a.dtype} images are not supported (uint8, uint16, float32)")
    if x.shape[2] == 3 and equal_planes(x):
        # planes equal to the bit are taken as they are: their float32 mean can be one ulp off, enough to round
        # a pixel of the answer otherwise than the gray image's own (JPEG's nearly equal planes are averaged)
        gray = x[..., :1] if not np.ptp(x, axis=2).any() else x.mean(axis=2, keepdims=True)
        return Decoded(np.ascontiguousarray(gray), alpha, a.dtype, lo, hi, fmt, planes=3)
    return Decoded(np.ascontiguousarray(x), alpha, a.dtype, lo, hi, fmt)


def decode(data: bytes, max_pixels: int, open_image) -> Decoded:
    if data[:4] in TIFF_MAGIC:
        with tiff_file(data, max_pixels) as tf:
            page, pages = tf.pages[0], len(tf.pages)
            a, lossy = page.asarray(), page.compression in (6, 7)  # (old-style) JPEG
            icc = page.tags.get(34675)  # InterColorProfile
        d = _from_array(a, "TIFF")
        d.pages, d.lossy, d.icc = pages, lossy, bytes(icc.value) if icc is not None else None
        return d
    if (deep := deep_png(data, max_pixels)) is not None:
        d = _from_array(deep, "PNG")
        d.icc, d.exif = png_icc(data), split_orientation(png_exif(data))[1]
        return d
    img = open_image(data, max_pixels)  # upright: a phone's EXIF orientation applied to the pixels
    fmt = img.format or "?"
    icc, exif = img.info.get("icc_profile"), split_orientation(img.info.get("exif"))[1]
    d = _decode_pillow(img, fmt)
    d.lossy = fmt in ("JPEG", "MPO", "HEIF", "AVIF") or (fmt == "WEBP" and lossy_webp(data))
    d.icc, d.exif = icc or None, exif
    return d


def _decode_pillow(img: Image.Image, fmt: str) -> Decoded:
    try:
        if img.mode == "P":
            img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        elif img.mode in ("1", "CMYK", "YCbCr", "HSV", "LAB"):
            img = img.convert("RGB" if img.mode != "1" else "L")
        elif img.mode == "I":
            a = np.asarray(img)
            if a.min() < 0 or a.max() > 65535:
                raise InputError("unsupported_bit_depth", "32-bit integer images are not supported")
            return _from_array(a.astype(np.uint16), fmt)
        a = np.asarray(img)
    except DECODE_ERRORS as exc:
        raise InputError("undecodable_image", f"image cannot be decoded: {plain(exc)}") from None
    if img.mode.startswith("I;16"):
        a = a.astype(np.uint16)
    return _from_array(a, fmt)


NOISE_KINDS = ("gaussian", "poisson", "auto")
SHUFFLE_MIN_SIDE = 32  # px: below this a sub-image is too small to say anything


def shuffle_stride(pd: bool, shape: tuple[int, ...], warnings: list[str]) -> int:
    """The pixel-shuffle stride for ``pd`` (camera noise): 2, or 1 when the image is too small (said)."""
    if not pd:
        return 1
    if min(shape[:2]) < SHUFFLE_MIN_SIDE:
        warnings.append(f"pd=true needs at least {SHUFFLE_MIN_SIDE} px a side; denoised without it")
        return 1
    return SHUFFLE_STRIDE


FLAT_NOISE = "noise=poisson: the noise level does not grow with the signal here; denoised as Gaussian noise"


@dataclass
class NoisePlan:
    """How the noise is treated: Gaussian of one level (given or estimated), or signal-dependent
    (Poisson-Gaussian: fitted, variance-stabilised, denoised at the stabilised level, inverted); ``stride``
    2: on the pixel-shuffled sub-images (``modelrepo.denoising.denoise`` with ``stride``), measured there too."""

    sigma_used: float  # 0-255; with a noise model, the level of the stabilised image
    sigma_estimated: float | None
    model: NoiseModel | None = None
    warnings: list[str] = field(default_factory=list)
    stride: int = 1
    # an estimated Gaussian level of a lossless file, seen whole: ``predict`` refines it with the network's
    # residual where the card says how (``modelrepo.denoising.blind_level``)
    refine: bool = False

    def summary(self) -> dict:
        if self.model is None:
            return {"kind": "gaussian"}
        return self.model.summary() | {"kind": "poisson-gaussian"}  # stabilised, whichever the fit's share


def plan_noise(x: np.ndarray, sigma: float | None, noise: str, lossy: bool = False, stride: int = 1) -> NoisePlan:
    """``sigma`` given: Gaussian at that level. Else ``noise`` = gaussian: the estimated level; poisson:
    the fitted noise-level function whenever it grows with the signal; auto: only where it is mostly
    signal-dependent (``NoiseModel.signal_dependent``). ``lossy``: both measured as a JPEG keeps its noise;
    ``stride`` 2: both measured on the pixel-shuffled sub-images the network will see."""
    if noise not in NOISE_KINDS:
        raise InputError("invalid_request", f"noise must be one of {', '.join(NOISE_KINDS)}, got {noise!r}")
    if sigma is not None:
        if noise != "gaussian":
            raise InputError("invalid_request", "sigma is a Gaussian noise level; leave it out with noise=" + noise)
        return NoisePlan(sigma, None, stride=stride)
    if noise != "gaussian":
        m = fit_noise_model(x[::stride, ::stride], lossy)  # one sub-image: noise as the network sees it
        if m.gain > 0 and (noise == "poisson" or m.signal_dependent):
            level = stabilised_level(m)
            return NoisePlan(level, round(level, 3), m, stride=stride)
    level = noise_255(x, lossy, stride)
    flat = [FLAT_NOISE] if noise == "poisson" else []
    return NoisePlan(level, level, warnings=flat, stride=stride, refine=not lossy and stride == 1)


async def predict(
    state: ModelState,
    x: np.ndarray,
    plan: NoisePlan,
    timeout_s: float,
    tile: int,
    overlap: int,
    ensemble: int | None = None,
) -> tuple[np.ndarray, Timing]:
    """The shared path (``modelrepo/denoising.py``) with the model's batcher as the network; a gray
    model runs each colour plane; ``ensemble`` flipped / rotated passes (default: the card's); with a
    noise model, on the variance-stabilised image. Timings add up over every call."""
    assert state.batcher is not None and state.card is not None
    totals = [0.0, 0.0, 0]
    group = max(1, state.batcher.max_batch_size // (x.shape[2] if state.card.input.channels == 1 else 1))

    async def infer(batch: np.ndarray) -> np.ndarray:
        y, t = await state.batcher.infer(batch, timeout_s)
        totals[0], totals[1], totals[2] = totals[0] + t.queue_s, totals[1] + t.inference_s, max(totals[2], t.batch_rows)
        return y

    if plan.model is not None:
        x = stabilise(x, plan.model)
    if plan.refine:  # the level the answer reports is the one used
        plan.sigma_used = plan.sigma_estimated = round(
            await blind_level(infer, x, state.card.input, plan.sigma_used), 3
        )
    y = await denoise(infer, x, state.card.input, plan.sigma_used, tile, overlap, group, ensemble, plan.stride)
    if plan.model is not None:
        y = unstabilise(y, plan.model)
    return y, Timing(totals[0], totals[1], int(totals[2]))


def restore(y: np.ndarray, d: Decoded) -> np.ndarray:
    """Back to the input's dtype, range, channel layout and alpha."""
    offset, span = d.units()
    out = np.clip(y, 0.0, 1.0) * span + offset
    out = np.round(out).astype(d.dtype) if d.dtype in (np.uint8, np.uint16) else out.astype(d.dtype)
    if d.planes > out.shape[2]:
        out = np.repeat(out, d.planes, axis=2)
    if d.alpha is not None:
        out = np.concatenate([out, d.alpha[..., None].astype(out.dtype)], axis=2)
    return out[..., 0] if out.shape[2] == 1 else out


def png_bytes(a: np.ndarray, icc: bytes | None = None, exif: bytes | None = None) -> bytes | None:
    """PNG of the array, with ``icc`` as its colour profile and ``exif``, when PNG can hold it: 8-bit
    L/LA/RGB/RGBA, 16-bit gray (Pillow), 16-bit gray + alpha and colour (imagecodecs); else None."""
    if a.dtype == np.uint16 and a.ndim == 3:
        import imagecodecs

        return png_with_meta(bytes(imagecodecs.png_encode(np.ascontiguousarray(a))), icc, exif)
    if a.dtype == np.uint8:
        img = Image.fromarray(a)
    elif a.dtype == np.uint16 and a.ndim == 2:
        img = Image.fromarray(a)  # I;16
    else:
        return None
    buf = io.BytesIO()
    img.save(buf, format="PNG", icc_profile=icc, **({"exif": exif} if exif else {}))
    return buf.getvalue()


def tiff_bytes(a: np.ndarray, icc: bytes | None = None) -> bytes:
    import tifffile

    buf = io.BytesIO()
    extra = {"extrasamples": ["unassalpha"]} if a.ndim == 3 and a.shape[2] in (2, 4) else {}
    photometric = "rgb" if a.ndim == 3 and a.shape[2] >= 3 else "minisblack"
    tifffile.imwrite(buf, a, photometric=photometric, iccprofile=icc, **extra)
    return buf.getvalue()


def noise_255(x: np.ndarray, lossy: bool = False, stride: int = 1) -> float:
    return round(estimate_sigma_shuffled(x, lossy, stride) * 255, 3)
