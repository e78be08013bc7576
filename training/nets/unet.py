"""The lecture's U-Net (Ronneberger et al., 2015) for per-pixel classification.

Encoder: a double conv, then ``depth`` times (2x2 max-pool -> double conv), keeping each output
as a skip; the deepest block is the bottleneck. Decoder: ``depth`` times (bilinear upsampling to
the skip's exact shape -> concatenation -> double conv); a final 1x1 conv gives class scores.
Any input size works: upsampling follows the skip's shape, so odd sizes need no padding.
"""

from __future__ import annotations

import torch
from torch import nn

from training.nets.unet_parts import DoubleConv, Down, OutConv, Up


class UNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, base: int = 16, depth: int = 4) -> None:
        super().__init__()
        widths = [base * 2**i for i in range(depth + 1)]  # e.g. 16, 32, 64, 128, 256
        self.inc = DoubleConv(in_channels, widths[0])
        self.downs = nn.ModuleList(Down(widths[i], widths[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i], widths[i]) for i in reversed(range(depth)))
        self.outc = OutConv(widths[0], num_classes)
        self.config = {"in_channels": in_channels, "num_classes": num_classes, "base": base, "depth": depth}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]  # (B, w0, H, W)
        for down in self.downs:
            skips.append(down(skips[-1]))  # (B, w_i, H / 2^i, W / 2^i)
        x = skips.pop()  # the bottleneck
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)  # (B, num_classes, H, W)
