"""The blind noise level: the wavelet estimate, lowered to what the network itself removes (divided by the
card's share) where that is less - texture read as noise."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from modelrepo.card import InputSpec
from modelrepo.denoising import SAMPLE_GRID, SAMPLE_TILE, blind_level, residual_level, sample_tiles


def spec(share: float | None) -> InputSpec:
    return InputSpec(
        color_mode="L", channels=1, height="any", width="any", mean=[0.0], std=[1.0], resize="none",
        pad_multiple=8, noise_level_channel=True, noise_refine=share,
    )  # fmt: skip


async def flat_network(batch: np.ndarray) -> np.ndarray:
    """Knows the scene is a flat 0.5: removes exactly the noise."""
    return np.full_like(batch[:, :-1], 0.5)


async def identity_network(batch: np.ndarray) -> np.ndarray:
    return batch[:, :-1].copy()


def noisy_flat(sigma: float, shape=(200, 300, 1)) -> np.ndarray:
    return (0.5 + np.random.default_rng(0).normal(0, sigma / 255, shape)).astype(np.float32)


def test_sample_tiles_spread_over_the_image_and_shrink_to_small_ones() -> None:
    x = np.arange(512 * 400, dtype=np.float32).reshape(512, 400, 1)
    tiles = sample_tiles(x)
    assert len(tiles) == SAMPLE_GRID**2 and all(t.shape == (SAMPLE_TILE, SAMPLE_TILE, 1) for t in tiles)
    assert len({float(t[0, 0, 0]) for t in tiles}) == len(tiles)  # four different places
    small = sample_tiles(x[:40, :50])
    assert len(small) == 1 and small[0].shape == (40, 50, 1)


def test_the_residual_level_is_the_noise_the_network_removes() -> None:
    x = noisy_flat(20)
    assert asyncio.run(residual_level(flat_network, x, spec(0.96), 20.0)) == pytest.approx(20, rel=0.05)
    assert asyncio.run(residual_level(identity_network, x, spec(0.96), 20.0)) == 0.0


def test_the_blind_level_is_the_estimate_or_the_residual_over_the_share_whichever_is_lower() -> None:
    x = noisy_flat(20)
    assert asyncio.run(blind_level(flat_network, x, spec(None), 27.0)) == 27.0  # no share on the card: the estimate
    assert asyncio.run(blind_level(flat_network, x, spec(0.8), 27.0)) == pytest.approx(20 / 0.8, rel=0.05)
    assert asyncio.run(blind_level(flat_network, x, spec(0.8), 22.0)) == 22.0  # never above the estimate
    assert asyncio.run(blind_level(identity_network, x, spec(0.8), 0.0)) == 0.0
    strip = noisy_flat(20, (SAMPLE_TILE - 1, 300, 1))  # narrower than a sample tile: the estimate as it is
    assert asyncio.run(blind_level(flat_network, strip, spec(0.8), 27.0)) == 27.0


def test_only_denoisers_with_a_noise_level_channel_take_a_share() -> None:
    with pytest.raises(ValueError, match="noise_refine"):
        InputSpec.model_validate(spec(0.96).model_dump() | {"noise_level_channel": False})
    with pytest.raises(ValueError):
        spec(0.3)  # a share is most of the noise, not a third
