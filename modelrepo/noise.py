"""Gaussian noise level estimation (no scikit-image needed in the service).

Donoho's robust estimator: sigma = median(|HH|) / 0.6745 over the finest diagonal Haar wavelet
coefficients - what ``skimage.restoration.estimate_sigma`` does with pywt.

Lossy files - JPEG, and HEIC, AVIF and lossy WebP alike (luma + half-resolution chroma, transform-coded) -
need two changes (``lossy=True``), both chosen on the training images (Gaussian noise of sigma 5-25 saved
at quality 75 and 95, denoised at each candidate level, PSNR against the clean image; the held-out effect:
``python -m training denoise-jpeg``, README *Denoising*):
- JPEG quantises the highest, diagonal frequencies hardest. At quality 75 (Pillow's default) and sigma
  5-10, most diagonal coefficients of the noise become zero and the HH estimate reads 0.3-0.7 of the true
  level, so the denoiser leaves the noise in (``clock`` at sigma 10: 32.8 dB against 45.3 at the true
  level). Where the diagonal details read below ``QUANTISED`` of the horizontal and vertical ones (HL,
  LH; their ratio is 0.8-1 in noisy images that kept them), they were quantised away and HL / LH are
  measured instead. (HL / LH always would read texture as noise more: 0.1-0.3 dB lost at sigma 15-25.)
- A colour JPEG does not keep its noise in the colour planes: JPEG stores luma + two chroma planes,
  quantises chroma harder and usually halves its resolution (4:2:0), which averages most of the chroma
  noise away while the luma keeps it. Measured per colour plane, the noise reads about a third low
  (sigma 25 -> ~16). The luma plane is measured instead and scaled to the level each colour plane had.
"""

from __future__ import annotations

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma weights: JPEG's, and Pillow's "L"
LUMA_NOISE = float(np.sqrt(np.sum(LUMA**2)))  # 0.669: luma noise per unit of independent noise in each plane


def luma(x: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) luma, JPEG's weights."""
    return np.asarray(x, dtype=np.float64) @ LUMA


QUANTISED = 0.7


def haar_details(a: np.ndarray, lossy: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The finest Haar level of a 2-D plane: (local means, detail coefficients), flat and paired - the
    diagonal details, or for a lossy file whose diagonal details were quantised away the horizontal and
    vertical ones (module docstring)."""
    a = np.asarray(a, dtype=np.float64)
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    q = a[0:h:2, 0:w:2], a[0:h:2, 1:w:2], a[1:h:2, 0:w:2], a[1:h:2, 1:w:2]
    means = ((q[0] + q[1] + q[2] + q[3]) / 4).ravel()
    diagonal = ((q[0] - q[1] - q[2] + q[3]) / 2).ravel()
    if not lossy:
        return means, diagonal
    straight = np.concatenate([((q[0] - q[1] + q[2] - q[3]) / 2).ravel(), ((q[0] + q[1] - q[2] - q[3]) / 2).ravel()])
    if median_level(diagonal) >= QUANTISED * median_level(straight):
        return means, diagonal
    return np.concatenate([means, means]), straight


def estimate_sigma(x: np.ndarray, lossy: bool = False) -> float:
    """x: (H, W) or (H, W, C) float image; the noise standard deviation in x's units (mean over channels;
    a lossy colour file: from its luma, as the level of one colour plane)."""
    x = np.asarray(x, dtype=np.float64)
    if lossy and x.ndim == 3 and x.shape[2] == 3:
        return median_level(haar_details(luma(x), True)[1]) / LUMA_NOISE
    chans = [x] if x.ndim == 2 else [x[..., c] for c in range(x.shape[2])]
    return float(np.mean([median_level(haar_details(a, lossy)[1]) for a in chans]))


def estimate_sigma_shuffled(x: np.ndarray, lossy: bool = False, stride: int = 2) -> float:
    """The noise level the pixel-shuffled sub-images x[i::stride, j::stride] show, averaged - what a
    denoiser run on them (``modelrepo.denoising.denoise`` with ``stride``) sees. Spatially correlated noise (a
    camera's demosaiced noise, a resampled image) reads 2-3x higher here than in the full image, where
    neighbouring pixels share it."""
    if stride <= 1:
        return estimate_sigma(x, lossy)
    return float(
        np.mean([estimate_sigma(x[i::stride, j::stride], lossy) for i in range(stride) for j in range(stride)])
    )


def median_level(c: np.ndarray) -> float:
    """The robust (median absolute value) standard deviation of zero-centred coefficients."""
    return float(np.median(np.abs(c)) / 0.6745) if c.size else 0.0
