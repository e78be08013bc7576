"""A Lagrangian nowcaster (after LUPIN, Pavlik et al. 2024): motion first, then growth and decay.

1. A motion U-Net reads the last ``frames_in`` frames and predicts a displacement field (pixels per
   time step, bounded by ``max_disp``).
2. The last frame is advected along it with a differentiable semi-Lagrangian step: frame ``k`` ahead
   is the last frame sampled at ``p - k * v(p)`` (``grid_sample``; ONNX ``GridSample``, which ONNX
   Runtime runs on CPU and CUDA).
3. An evolution U-Net reads the input frames and the advected ones and adds growth and decay.

Same contract as ``Nowcaster``: (B, frames_in, H, W) on the network scale -> (B, frames_out, H, W),
so the task's training loop, ``rollout`` (trained through to 60 min), export and the service's
``/nowcast`` use it unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.nets.unet import UNet


def advect(frame: torch.Tensor, disp: torch.Tensor, k: float) -> torch.Tensor:
    """(B, 1, H, W) sampled at p - k * disp(p) (disp (B, 2, H, W) in pixels: dy, dx); edges repeat."""
    _, _, h, w = frame.shape
    ys = torch.arange(h, dtype=frame.dtype, device=frame.device)
    xs = torch.arange(w, dtype=frame.dtype, device=frame.device)
    gy = ys.view(1, h, 1) - k * disp[:, 0]
    gx = xs.view(1, 1, w) - k * disp[:, 1]
    # pixel positions -> [-1, 1] (align_corners=True: -1 and 1 are the centres of the edge pixels)
    grid = torch.stack([2 * gx / (w - 1) - 1, 2 * gy / (h - 1) - 1], dim=-1)
    return F.grid_sample(frame, grid, mode="bilinear", padding_mode="border", align_corners=True)


class LagrangianNowcaster(nn.Module):
    def __init__(
        self, frames_in: int = 3, frames_out: int = 2, base: int = 16, depth: int = 3, max_disp: float = 4.0
    ) -> None:
        super().__init__()
        self.motion = UNet(in_channels=frames_in, num_classes=2, base=base, depth=depth)
        self.evolution = UNet(in_channels=frames_in + frames_out, num_classes=frames_out, base=base, depth=depth)
        self.frames_in, self.frames_out, self.max_disp = frames_in, frames_out, max_disp
        self.config = {
            "frames_in": frames_in,
            "frames_out": frames_out,
            "base": base,
            "depth": depth,
            "max_disp": max_disp,
        }

    def displacement(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2, H, W): pixels per time step (dy, dx)."""
        return self.max_disp * torch.tanh(self.motion(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        disp = self.displacement(x)
        last = x[:, -1:]
        moved = torch.cat([advect(last, disp, float(k)) for k in range(1, self.frames_out + 1)], dim=1)
        return torch.relu(moved + self.evolution(torch.cat([x, moved], dim=1)))
