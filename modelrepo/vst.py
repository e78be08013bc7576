"""Signal-dependent noise: fit the noise-level function, stabilise its variance, denoise, invert.

Photon-limited images (fluorescence, astronomy, a phone camera in low light) carry Poisson-Gaussian
noise: the variance grows with the signal, var = gain * x + sigma^2. A denoiser trained for Gaussian
noise of one level over- and under-smooths such an image at once. The classical answer (Makitalo &
Foi 2013) is the generalised Anscombe transform, after which the noise is close to Gaussian with unit
variance; denoise there at that level, and map back with the closed-form approximation of the exact
unbiased inverse.

``fit_noise_model`` estimates gain and sigma^2 from the image alone: the finest diagonal Haar
coefficients (noise only, to first order) binned by the local mean, a robust (median) level per bin,
and a least-squares line through var(mean). Bins where the noise would be clipped at 0 or 1 are left
out (clipped Gaussian noise looks signal-dependent there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelrepo.noise import LUMA_NOISE, haar_details, luma

BINS = 16
SIGNAL_DEPENDENT = 0.5  # at mid-range, this share of the variance from the signal-dependent term or more
MIN_SPREAD = 0.25  # the bins kept must span this much of the range to say anything about a slope


@dataclass(frozen=True)
class NoiseModel:
    """var(x) = gain * x + var0, on the image's [0, 1] scale."""

    gain: float
    var0: float

    @property
    def signal_dependent(self) -> bool:
        mid = self.gain * 0.5
        return self.gain > 0 and mid >= SIGNAL_DEPENDENT * (mid + self.var0)

    def summary(self) -> dict:
        return {
            "kind": "poisson-gaussian" if self.signal_dependent else "gaussian",
            "gain_255": round(self.gain * 255, 4),  # var = gain_255 * x + sigma0_255^2 on the 0-255 scale
            "sigma0_255": round(float(np.sqrt(self.var0)) * 255, 3),
        }


def fit_noise_model(x: np.ndarray, lossy: bool = False) -> NoiseModel:
    """x: (H, W) or (H, W, C) in [0, 1] -> the fitted noise-level function (planes pooled). ``lossy``: the
    details a JPEG keeps, and for colour the luma plane, as the function of one colour plane
    (``modelrepo.noise``)."""
    x = np.asarray(x, np.float64)
    if lossy and x.ndim == 3 and x.shape[2] == 3:
        m = fit_noise_model(luma(x)[..., None], True)  # var(luma) = LUMA_NOISE^2 (gain x + var0) where planes agree
        return NoiseModel(m.gain / LUMA_NOISE**2, m.var0 / LUMA_NOISE**2)
    planes = [x] if x.ndim == 2 else [x[..., c] for c in range(x.shape[2])]
    means, coefs = zip(*(haar_details(a, lossy) for a in planes))
    m, c = np.concatenate(means), np.concatenate(coefs)
    if m.size < BINS * 16:
        return NoiseModel(0.0, _level(c) ** 2 if c.size else 0.0)
    order = np.argsort(m, kind="stable")
    mu, var = [], []
    for idx in np.array_split(order, BINS):
        level = _level(c[idx])
        centre = float(np.median(m[idx]))
        if level < centre < 1 - level:  # no clipping within one noise level
            mu.append(centre)
            var.append(level**2)
    if len(mu) < 3 or max(mu) - min(mu) < MIN_SPREAD:
        return NoiseModel(0.0, _level(c) ** 2)
    gain, var0 = np.polyfit(mu, var, 1)
    if gain <= 0:
        return NoiseModel(0.0, float(np.median(var)))
    if var0 < 0:  # pure Poisson (and noise): a line through the origin
        gain, var0 = float(np.dot(mu, var) / np.dot(mu, mu)), 0.0
    return NoiseModel(float(gain), float(var0))


def _level(c: np.ndarray) -> float:
    """Noise level from Haar coefficients: the RMS of those within 3 robust (median) levels - edges left
    out, and unlike the median alone not stuck on the few values a coarsely quantised image takes."""
    robust = float(np.median(np.abs(c)) / 0.6745)
    if robust == 0:
        return float(np.sqrt(np.mean(c**2))) if c.size else 0.0
    kept = c[np.abs(c) <= 3 * robust]
    return float(np.sqrt(np.mean(kept**2)) / 0.9866)  # the RMS of a normal variable cut at 3 sigma


def _anscombe(x: np.ndarray | float, m: NoiseModel) -> np.ndarray:
    """Generalised Anscombe transform of x (the image's [0, 1] scale): unit noise variance."""
    return 2 * np.sqrt(np.maximum(np.asarray(x, np.float64) / m.gain + 3 / 8 + m.var0 / m.gain**2, 0.0))


def _span(m: NoiseModel) -> tuple[float, float]:
    """The transforms of 0 and 1: the stabilised image is mapped back onto [0, 1] with them (for a small
    gain the whole transform is then close to the identity, as the network expects its images)."""
    return float(_anscombe(0.0, m)), float(_anscombe(1.0, m))


def stabilised_level(m: NoiseModel) -> float:
    """The noise level (0-255 scale) of the stabilised image: unit variance, scaled like the image."""
    lo, hi = _span(m)
    return 255.0 / (hi - lo)


def stabilise(x: np.ndarray, m: NoiseModel) -> np.ndarray:
    """The transform, mapped onto [0, 1]; its noise level is ``stabilised_level(m)``."""
    lo, hi = _span(m)
    return ((_anscombe(x, m) - lo) / (hi - lo)).astype(np.float32)


def unstabilise(z01: np.ndarray, m: NoiseModel) -> np.ndarray:
    """The inverse of ``stabilise``: closed-form approximation of the exact unbiased inverse."""
    lo, hi = _span(m)
    z = np.maximum(z01.astype(np.float64) * (hi - lo) + lo, 0.8)
    r = np.sqrt(1.5)
    counts = (z / 2) ** 2 + 0.25 * r / z - 11 / 8 / z**2 + 5 / 8 * r / z**3 - 1 / 8 - m.var0 / m.gain**2
    return (counts * m.gain).astype(np.float32)
