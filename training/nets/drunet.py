"""A light DRUNet-style denoiser (Zhang et al., 2021, "Plug-and-play image restoration with deep
denoiser prior"), with FFDNet's pixel-unshuffle in front (Zhang et al., 2018) for speed.

Input: the noisy image and its noise-level map (sigma / 255 everywhere), as FFDNet and DRUNet.
The pair is pixel-unshuffled by 2 (4x the channels at half the size), runs through a bias-free
U-Net of residual blocks (strided 2x2 convs down, transposed 2x2 convs up, skips added, not
concatenated), and is shuffled back; the network predicts the noise, which is subtracted
(residual learning, as DnCNN). Bias-free convolutions generalise across noise levels (Mohan et
al., 2020). Any size that is a multiple of ``multiple`` (pad before, crop after).
"""

from __future__ import annotations

import torch
from torch import nn


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, padding=1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _blocks(c: int, n: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(c) for _ in range(n)))


class ResUNetDenoiser(nn.Module):
    def __init__(
        self,
        channels: int = 1,
        base: int = 32,
        depth: int = 3,
        blocks: int = 1,
        unshuffle: int = 2,
        max_width: int = 128,
    ) -> None:
        super().__init__()
        widths = [min(base * 2**i, max_width) for i in range(depth + 1)]  # e.g. 32, 64, 128, 128
        s2 = unshuffle * unshuffle
        self.unshuffle, self.channels = unshuffle, channels
        self.head = nn.Conv2d((channels + 1) * s2, widths[0], 3, padding=1, bias=False)
        self.downs = nn.ModuleList(
            nn.Sequential(_blocks(widths[i], blocks), nn.Conv2d(widths[i], widths[i + 1], 2, stride=2, bias=False))
            for i in range(depth)
        )
        self.body = _blocks(widths[-1], blocks)
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2, bias=False) for i in reversed(range(depth))
        )
        self.up_blocks = nn.ModuleList(_blocks(widths[i], blocks) for i in reversed(range(depth)))
        self.tail = nn.Conv2d(widths[0], channels * s2, 3, padding=1, bias=False)
        self.multiple = unshuffle * 2**depth
        self.config = {
            "kind": "resunet",
            "channels": channels,
            "base": base,
            "depth": depth,
            "blocks": blocks,
            "unshuffle": unshuffle,
            "max_width": max_width,
        }

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) in [0, 1], H and W multiples of ``multiple``; noise_level: (B, 1, H, W)."""
        z = torch.cat([x, noise_level], dim=1)
        if self.unshuffle > 1:
            z = nn.functional.pixel_unshuffle(z, self.unshuffle)  # (B, 4(C+1), H/2, W/2)
        h = self.head(z)
        skips = []
        for down in self.downs:
            skips.append(h)
            h = down(h)
        h = self.body(h)
        for up, blocks in zip(self.ups, self.up_blocks):
            h = blocks(up(h) + skips.pop())
        noise = self.tail(h + 0)  # (B, C * s^2, H/s, W/s)
        if self.unshuffle > 1:
            noise = nn.functional.pixel_shuffle(noise, self.unshuffle)
        return x - noise
