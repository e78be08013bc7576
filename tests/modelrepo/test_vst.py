"""Signal-dependent noise: the fitted noise-level function and the variance-stabilising transform."""

from __future__ import annotations

import numpy as np
import pytest

from modelrepo.vst import NoiseModel, fit_noise_model, stabilise, stabilised_level, unstabilise
from training.data.natural import validation_images


def test_photon_noise_is_fitted_and_gaussian_noise_is_not_called_signal_dependent() -> None:
    rng = np.random.default_rng(0)
    wheel = validation_images(gray=True)[2]  # colorwheel: a wide range of intensities
    for peak in (10, 30, 100):
        noisy = rng.poisson(wheel * peak) / peak
        m = fit_noise_model(noisy)
        assert m.signal_dependent and m.gain == pytest.approx(1 / peak, rel=0.25), peak
    for sigma in (5, 15, 25, 50):
        noisy = np.clip(wheel + rng.normal(0, sigma / 255, wheel.shape), 0, 1)
        assert not fit_noise_model(noisy).signal_dependent, sigma


def test_stabilised_noise_has_one_level_at_every_intensity() -> None:
    rng = np.random.default_rng(1)
    m = NoiseModel(gain=1 / 30, var0=(3 / 255) ** 2)
    for level in (0.1, 0.3, 0.6, 0.9):
        flat = np.full((256, 256), level)
        noisy = rng.poisson(flat / m.gain) * m.gain + rng.normal(0, np.sqrt(m.var0), flat.shape)
        assert noisy.std() == pytest.approx(np.sqrt(m.gain * level + m.var0), rel=0.05)
        assert stabilise(noisy, m).std() * 255 == pytest.approx(stabilised_level(m), rel=0.1), level


def test_unstabilise_inverts_on_average_and_maps_the_range_onto_itself() -> None:
    m = NoiseModel(gain=1 / 30, var0=0.0)
    x = np.linspace(0.05, 1.0, 50)
    z = stabilise(x, m)
    assert z.min() >= 0 and z.max() == pytest.approx(1.0, abs=1e-6)
    rng = np.random.default_rng(2)
    noisy = rng.poisson(np.repeat(x[:, None], 4000, axis=1) / m.gain) * m.gain
    mean_z = stabilise(noisy, m).mean(axis=1)  # what an ideal denoiser returns: E[z]
    assert np.abs(unstabilise(mean_z, m) - x).max() < 0.01  # the unbiased inverse: no bias left
    tiny = NoiseModel(gain=1e-6, var0=(10 / 255) ** 2)  # almost Gaussian: almost the identity
    assert np.abs(stabilise(x, tiny) - x).max() < 1e-3
