"""A colour denoiser made of a one-channel one: the image goes into an orthonormal opponent colour
space (luminance and two colour differences, as CBM3D's first step), each channel is denoised by the
same one-channel network with its own noise level, and the result goes back to RGB.

Orthonormal rows keep white Gaussian noise white and of the same sigma in every opponent channel;
each channel is then scaled and offset into [0, 1] (the range the network was trained on), which
scales its noise level by the same factor. A one-channel network trained on gray images therefore
denoises colour as it is; fine-tuning on colour patches trains that one network on all three
channels. Exported as one ONNX graph (two fixed 1x1 colour transforms around the network).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# rows: luminance, red - blue, red + blue - 2 green; orthonormalised below
_ROWS = ((1.0, 1.0, 1.0), (1.0, 0.0, -1.0), (1.0, -2.0, 1.0))
# scale and offset that map each channel of an RGB image in [0, 1] into [0, 1]
_SCALE = (1 / math.sqrt(3), 1 / math.sqrt(2), math.sqrt(6) / 4)
_OFFSET = (0.0, 0.5, 0.5)


class OpponentDenoiser(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        if getattr(net, "channels", 1) != 1:
            raise ValueError("the opponent-colour wrapper takes a one-channel denoiser")
        self.net, self.channels, self.multiple = net, 3, net.multiple
        t = torch.tensor(_ROWS)
        self.register_buffer("transform", t / t.norm(dim=1, keepdim=True), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("offset", torch.tensor(_OFFSET).view(1, 3, 1, 1), persistent=False)
        self.config = dict(net.config) | {"kind": "opponent", "channels": 3}

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) RGB in [0, 1]; noise_level: (B, 1, H, W), sigma / 255 of the RGB noise."""
        b, _, h, w = x.shape
        u = nn.functional.conv2d(x, self.transform[:, :, None, None]) * self.scale + self.offset
        levels = noise_level * self.scale  # (B, 3, H, W): each channel's own sigma
        out = self.net(u.reshape(b * 3, 1, h, w), levels.reshape(b * 3, 1, h, w)).reshape(b, 3, h, w)
        return nn.functional.conv2d((out - self.offset) / self.scale, self.transform.t()[:, :, None, None])
