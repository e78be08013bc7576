"""Denoising autoencoders: the lecture's bottleneck autoencoder, and the serving model.

The lecture: encode x into a small latent space h = f(x), decode r = g(h); as a denoiser it
learns from x~ = x + noise to reconstruct x. ``ConvAutoencoder`` is that textbook model (strided
convs down to a latent map of ``latent_channels`` at 1/8 size, transposed convs back up).

``DenoisingUNet`` is the serving model: a U-Net (shared parts) that predicts the *noise* and
subtracts it (residual learning, as DnCNN), with a noise-level map as an extra input channel
(as FFDNet). The service fills that map from the user's ``sigma`` or, when absent, from a
wavelet estimate of the noise, so in use it is blind to sigma in [0, 50] (0-255 scale).
"""

from __future__ import annotations

import torch
from torch import nn

from training.nets.unet import UNet


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


class DenoisingUNet(nn.Module):
    """Residual U-Net denoiser: clean = x - U([x, sigma_map]), U the lecture's U-Net (``unet.py``) with
    one more input channel (the noise-level map) and the image's channels out. Any size (pad to a
    multiple of 2^depth)."""

    def __init__(self, channels: int = 1, base: int = 32, depth: int = 3) -> None:
        super().__init__()
        self.unet = UNet(in_channels=channels + 1, num_classes=channels, base=base, depth=depth)
        self.config = {"kind": "residual_unet", "channels": channels, "base": base, "depth": depth}

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) in [0, 1]; noise_level: (B, 1, H, W), sigma / 255 at every pixel."""
        return x - self.unet(torch.cat([x, noise_level], dim=1))  # subtract the predicted noise


class WithNoiseChannel(nn.Module):
    """Export wrapper: one input tensor (B, C + 1, H, W) = image channels then the noise-level map."""

    def __init__(self, net: nn.Module, channels: int) -> None:
        super().__init__()
        self.net, self.channels = net, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x[:, : self.channels], x[:, self.channels :])
