"""The noise level of a JPEG: measured on the details JPEG keeps, a colour one on its luma."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from modelrepo.noise import estimate_sigma
from modelrepo.vst import fit_noise_model


def jpeg(a: np.ndarray, quality: int, subsampling: int = 2) -> np.ndarray:
    """Through a JPEG file as Pillow writes it (quality 75, 4:2:0 by default) -> float in [0, 1]."""
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.round(a * 255), 0, 255).astype(np.uint8)).save(
        buf, "JPEG", quality=quality, subsampling=subsampling
    )
    return np.asarray(Image.open(buf), np.float64) / 255


@pytest.fixture(scope="module")
def smooth() -> np.ndarray:
    """A smooth colour scene in 0.2..0.8: what is left in the fine details is the noise."""
    f = ndi.gaussian_filter(np.random.default_rng(0).standard_normal((256, 256, 3)), (12, 12, 0))
    return 0.5 + 0.3 * f / np.abs(f).max()


@pytest.mark.parametrize("quality", [75, 95])
def test_a_gray_jpeg_keeps_its_noise_level(smooth, quality: int) -> None:
    """At quality 75 (Pillow's default) most diagonal details of sigma-10 noise are quantised to zero: the
    plain estimate reads about 0.6 of the level; the horizontal and vertical details keep it. At 95 the
    diagonal ones are kept and used."""
    gray = smooth.mean(axis=2)
    noisy = jpeg(gray + np.random.default_rng(quality).normal(0, 10 / 255, gray.shape), quality)
    plain, as_jpeg = estimate_sigma(noisy) * 255, estimate_sigma(noisy, lossy=True) * 255
    assert as_jpeg == pytest.approx(10, rel=0.1)
    assert plain < 7 if quality == 75 else as_jpeg == plain  # kept: the diagonal details, as for any image
    assert estimate_sigma(noisy[..., None], lossy=True) * 255 == pytest.approx(as_jpeg)  # (H, W, 1) alike


@pytest.mark.parametrize("subsampling", [2, 0])
def test_a_colour_jpeg_is_measured_on_its_luma(smooth, subsampling: int) -> None:
    """JPEG keeps little of the chroma noise (4:2:0 averages it, quantisation is coarser): per colour plane
    sigma 25 reads ~17; from the luma, 25."""
    noisy = jpeg(smooth + np.random.default_rng(1).normal(0, 25 / 255, smooth.shape), 95, subsampling)
    plain, as_jpeg = estimate_sigma(noisy) * 255, estimate_sigma(noisy, lossy=True) * 255
    assert as_jpeg == pytest.approx(25, rel=0.1)
    if subsampling == 2:
        assert plain < 0.75 * 25


def test_photon_noise_in_a_colour_jpeg_is_fitted_per_plane() -> None:
    """A tinted ramp (planes that agree up to a factor) with Poisson noise of a 100-photon peak."""
    ramp = np.linspace(0.05, 0.95, 256)[None, :, None] * np.array([1.0, 0.9, 0.75]) * np.ones((256, 1, 1))
    peak = 100
    noisy = jpeg(np.random.default_rng(2).poisson(ramp * peak) / peak, 95)
    m = fit_noise_model(noisy, lossy=True)
    assert m.signal_dependent and m.gain == pytest.approx(1 / peak, rel=0.2)
    assert fit_noise_model(noisy).gain < 0.5 / peak  # per plane: the chroma's share averaged away


def test_camera_noise_reads_higher_on_the_pixel_shuffled_sub_images() -> None:
    """Demosaicing spreads the noise over neighbours: the full image's finest details hold little of it, the
    sub-images two pixels apart hold it; white noise reads the same both ways."""
    from modelrepo.noise import estimate_sigma_shuffled
    from training.data.camera import camera_pair

    grey = np.full((128, 128, 3), 0.5)
    noisy, reference = camera_pair(grey, 100, 0.004, np.random.default_rng(3))
    assert np.abs(reference - 0.5).max() < 1e-6  # the pipeline keeps a flat grey grey
    true = float(np.std(noisy - reference)) * 255  # per-pixel noise, ~15 at this light level
    full, shuffled = estimate_sigma(noisy) * 255, estimate_sigma_shuffled(noisy, stride=2) * 255
    assert full < 0.5 * true and shuffled > 2 * full and shuffled == pytest.approx(true, rel=0.35)
    white = 0.5 + np.random.default_rng(4).normal(0, 15 / 255, (128, 128, 3))
    assert estimate_sigma_shuffled(white, stride=2) == pytest.approx(estimate_sigma(white), rel=0.05)
    assert estimate_sigma_shuffled(white, stride=1) == estimate_sigma(white)
