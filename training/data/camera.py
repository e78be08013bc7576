"""A camera's noise, simulated: what a phone or a colour microscope camera puts in a photo.

The clean sRGB image is taken back to linear light (gamma 2.2), sampled through an RGGB Bayer mosaic,
given Poisson-Gaussian noise there (``peak`` photons at full scale, ``read`` Gaussian read noise), demosaiced
bilinearly and encoded with gamma 2.2 again. The reference is the same pipeline without the noise, so the
two differ by the noise alone. Demosaicing spreads each sensor pixel's noise over its neighbours: the
noise is spatially correlated (and signal-dependent), unlike the white Gaussian noise the denoisers are
trained on. After CBDNet's pipeline (Guo et al. 2019), without its camera response curves.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

GAMMA = 2.2
_BILINEAR = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4.0


def _bayer(h: int, w: int) -> np.ndarray:
    """(H, W, 3) 0/1 masks of an RGGB mosaic."""
    m = np.zeros((h, w, 3))
    m[0::2, 0::2, 0] = m[0::2, 1::2, 1] = m[1::2, 0::2, 1] = m[1::2, 1::2, 2] = 1
    return m


def mosaic(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W): each pixel keeps its Bayer colour."""
    return (rgb * _bayer(*rgb.shape[:2])).sum(axis=2)


def demosaic(raw: np.ndarray) -> np.ndarray:
    """Bilinear demosaicing of an RGGB mosaic -> (H, W, 3)."""
    m = _bayer(*raw.shape)
    out = np.empty(m.shape)
    for c in range(3):
        out[..., c] = ndi.convolve(raw * m[..., c], _BILINEAR, mode="mirror") / ndi.convolve(
            m[..., c], _BILINEAR, mode="mirror"
        )
    return out


def develop(raw: np.ndarray) -> np.ndarray:
    """A linear RGGB mosaic -> the sRGB image (float32, [0, 1])."""
    return (np.clip(demosaic(raw), 0, 1) ** (1 / GAMMA)).astype(np.float32)


def camera_pair(clean: np.ndarray, peak: float, read: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """sRGB (H, W, 3) in [0, 1] -> (noisy, reference) through the simulated camera, both float32 in [0, 1]."""
    raw = mosaic(np.clip(clean, 0, 1) ** GAMMA)
    noisy = rng.poisson(raw * peak) / peak + rng.normal(0, read, raw.shape)
    return develop(noisy), develop(raw)
