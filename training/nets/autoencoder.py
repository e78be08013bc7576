"""Denoising autoencoders: the lecture's bottleneck autoencoder, and the serving model.

The lecture: encode x into a small latent space h = f(x), decode r = g(h); as a denoiser it
learns from x~ = x + noise to reconstruct x. ``ConvAutoencoder`` is that textbook model (strided
convs down to a latent map of ``latent_channels`` at 1/8 size, transposed convs back up).

The serving model is ``drunet.py``'s residual U-Net with a noise-level map input; ``WithNoiseChannel``
is the export wrapper both share (one input tensor, the map as its last channel).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvAutoencoder(nn.Module):
    """The textbook bottleneck: (conv stride 2 -> ReLU) x 3 to ``latent_channels``, mirrored back."""

    def __init__(self, channels: int = 1, width: int = 32, latent_channels: int = 16) -> None:
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, w, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),  # (B, w, H/2, W/2)
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),  # (B, 2w, H/4, W/4)
            nn.Conv2d(2 * w, latent_channels, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),  # (B, L, H/8, W/8)
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(latent_channels, 2 * w, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w, channels, 4, stride=2, padding=1),  # (B, C, H, W)
        )
        self.config = {"kind": "bottleneck", "channels": channels, "width": width, "latent_channels": latent_channels}

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W) with H, W multiples of 8; the noise level is ignored (the lecture's model is blind)."""
        return self.decoder(self.encoder(x))


class WithNoiseChannel(nn.Module):
    """Export wrapper: one input tensor (B, C + 1, H, W) = image channels then the noise-level map."""

    def __init__(self, net: nn.Module, channels: int) -> None:
        super().__init__()
        self.net, self.channels = net, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x[:, : self.channels], x[:, self.channels :])
