"""The radar nowcaster: the shared U-Net with the last ``frames_in`` frames as input channels.

It predicts the next ``frames_out`` frames as changes to the latest one (a residual: "nothing
changes" is the starting point the network improves on). Rolled out autoregressively - the
newest ``frames_in`` frames, observed or predicted, are fed back - to reach longer lead times.
"""

from __future__ import annotations

import torch
from torch import nn

from training.nets.unet import UNet


class Nowcaster(nn.Module):
    def __init__(self, frames_in: int = 3, frames_out: int = 2, base: int = 16, depth: int = 3) -> None:
        super().__init__()
        self.unet = UNet(in_channels=frames_in, num_classes=frames_out, base=base, depth=depth)
        self.frames_in, self.frames_out = frames_in, frames_out
        self.config = {"frames_in": frames_in, "frames_out": frames_out, "base": base, "depth": depth}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1:] + self.unet(x)  # (B, frames_out, H, W)


def rollout(model: nn.Module, x: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, frames_in, H, W) -> (B, steps, H, W): apply, append, feed the newest frames back."""
    seq, n_in = x, x.shape[1]
    out: list[torch.Tensor] = []
    while sum(o.shape[1] for o in out) < steps:
        y = model(seq[:, -n_in:])
        out.append(y)
        seq = torch.cat([seq[:, -n_in:], y], dim=1)
    return torch.cat(out, dim=1)[:, :steps]
