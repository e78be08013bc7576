"""Gaussian noise level estimation (no scikit-image needed in the service).

Donoho's robust estimator: sigma = median(|HH|) / 0.6745 over the finest diagonal Haar wavelet
coefficients - what ``skimage.restoration.estimate_sigma`` does with pywt.
"""

from __future__ import annotations

import numpy as np


def estimate_sigma(x: np.ndarray) -> float:
    """x: (H, W) or (H, W, C) float image; the noise standard deviation in x's units (mean over channels)."""
    x = np.asarray(x, dtype=np.float64)
    chans = [x] if x.ndim == 2 else [x[..., c] for c in range(x.shape[2])]
    sigmas = []
    for a in chans:
        h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        if h == 0 or w == 0:
            sigmas.append(0.0)
            continue
        a = a[:h, :w]
        hh = (a[0::2, 0::2] - a[0::2, 1::2] - a[1::2, 0::2] + a[1::2, 1::2]) / 2.0
        sigmas.append(float(np.median(np.abs(hh)) / 0.6745))
    return float(np.mean(sigmas))
