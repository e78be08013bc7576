"""The lecture's comparison: an encoder-forecaster ConvLSTM nowcaster (Shi et al., 2015).

A convolutional stem brings each frame to a quarter of the resolution; two stacked ConvLSTM layers
read the ``frames_in`` observed frames in order (the encoder); their states initialise two
forecaster layers that are unrolled for ``frames_out`` steps, each fed the stem's encoding of the
frame it predicted last; a transposed-convolution decoder turns the top state into a change to the
latest frame. One application forecasts every lead time (``frames_out`` = 10: 60 minutes), so
training goes through the whole hour and the exported graph is the fixed-length unrolled network.

Same contract as ``Nowcaster``: (B, frames_in, H, W) on the network scale -> (B, frames_out, H, W),
H and W multiples of ``pad_multiple`` (4).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvLSTMCell(nn.Module):
    """i, f, o, g gates from one convolution over [input, hidden]; c' = f c + i g, h' = o tanh(c')."""

    def __init__(self, channels: int, kernel: int = 3) -> None:
        super().__init__()
        self.gates = nn.Conv2d(2 * channels, 4 * channels, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, o, g = torch.chunk(self.gates(torch.cat([x, h], dim=1)), 4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class ConvLSTMNowcaster(nn.Module):
    pad_multiple = 4

    def __init__(self, frames_in: int = 3, frames_out: int = 10, hidden: int = 48) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, hidden // 2, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(hidden // 2, hidden, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        )
        self.encoder = nn.ModuleList([ConvLSTMCell(hidden), ConvLSTMCell(hidden)])
        self.forecaster = nn.ModuleList([ConvLSTMCell(hidden), ConvLSTMCell(hidden)])
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(hidden // 2, 16, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        )
        self.head = nn.Conv2d(16 + 1, 1, 3, padding=1)  # with the frame it changes: sharp edges
        self.frames_in, self.frames_out = frames_in, frames_out
        self.config = {"frames_in": frames_in, "frames_out": frames_out, "hidden": hidden}

    def _stack(self, cells: nn.ModuleList, x: torch.Tensor, states: list) -> torch.Tensor:
        for k, cell in enumerate(cells):
            states[k] = cell(x, *states[k])
            x = states[k][0]
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [self.stem(x[:, t : t + 1]) for t in range(x.shape[1])]
        zero = torch.zeros_like(feats[0])  # states start at zero (shape follows the input: dynamic H x W)
        states = [(zero, zero), (zero, zero)]
        for f in feats:
            self._stack(self.encoder, f, states)
        frame, out = x[:, -1:], []
        for _ in range(self.frames_out):
            top = self._stack(self.forecaster, self.stem(frame), states)
            frame = frame + self.head(torch.cat([self.decoder(top), frame], dim=1))
            out.append(frame)
        return torch.cat(out, dim=1)
