"""The denoisers' training batches: clean patches (dead leaves + natural images), Gaussian noise, and the
noise-level input - the true sigma, or for a share of the patches the service's blind estimate of it."""

from __future__ import annotations

import numpy as np
import torch

from modelrepo.noise import estimate_sigma
from training.data.natural import random_patches


def add_noise(clean: torch.Tensor, g: torch.Generator, max_sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) clean -> noisy (sigma ~ U(0, max_sigma) per image, 0-255 scale) and the (B, 1, H, W) level map."""
    sigma = torch.rand(clean.shape[0], 1, 1, 1, generator=g) * max_sigma / 255  # (B, 1, 1, 1)
    noisy = clean + torch.randn(clean.shape, generator=g) * sigma
    return noisy, sigma.expand(-1, 1, *clean.shape[2:])


def blind_levels(noisy: torch.Tensor, level: torch.Tensor, share: float, rng: np.random.Generator) -> torch.Tensor:
    """``level`` with a random ``share`` of its rows (all of them at 1.0) replaced by the service's blind
    estimate of each noisy image's sigma - the level the served model is given."""
    if share <= 0:
        return level
    level = level.clone()
    for i in np.flatnonzero(rng.random(noisy.shape[0]) < share):
        level[i] = estimate_sigma(noisy[i].permute(1, 2, 0).squeeze(-1).numpy())
    return level


class PatchSource:
    """Clean training patches: ``leaves_share`` of each batch from dead-leaves images, the rest from
    the natural training images (random crops, flips and quarter turns of both). ``cfg``: a DenoiseConfig."""

    def __init__(self, cfg, natural: list[np.ndarray], leaves: list[np.ndarray]) -> None:
        self.cfg, self.natural, self.leaves = cfg, natural, leaves

    def __call__(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        k = int(rng.binomial(n, self.cfg.leaves_share)) if self.leaves else 0
        parts = [random_patches(self.leaves, k, self.cfg.patch, rng)] if k else []
        if n - k:
            parts.append(random_patches(self.natural, n - k, self.cfg.patch, rng))
        return torch.from_numpy(np.concatenate(parts))
