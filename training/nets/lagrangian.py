"""A Lagrangian nowcaster (after LUPIN, Pavlik et al. 2024): motion first, then growth and decay.

1. Motion: dense Lucas-Kanade optical flow of the last ``frames_in`` frames, computed inside the
   graph (``training.nets.flow``), plus a correction a small motion U-Net predicts from the frames
   and that flow (at most ``max_disp`` px per step; it starts at zero, so an untrained model is
   plain extrapolation). Learning motion from scratch through the warp alone was tried first: after
   3,000 steps it still lost to pysteps' Lucas-Kanade at 6 minutes (MAE 1.37 vs 1.01 dBZ).
2. Advection: the latest frame is extrapolated along that field for all ``frames_out`` steps with
   backward semi-Lagrangian trajectories (``grid_sample``; ONNX ``GridSample``, which ONNX Runtime
   runs on CPU and CUDA), sampled once per step so echoes do not blur as they move.
3. Evolution, in one of two frames (its last layer starts at zero, too):
   ``lagrangian`` (default) - the evolution U-Net reads the frames and the last two steps' changes
   *along the motion* (the latest frame minus the one before advected by one step, and so on: growth
   and decay as the echo experiences them) and predicts, for each lead, a change on the grid of the
   latest frame, which is then carried along the same trajectory as the echo;
   ``eulerian`` - it reads the frames and the advected ones and adds a change to each forecast
   frame where it stands (the network has to move growth itself).

Same contract as ``Nowcaster``: (B, frames_in, H, W) on the network scale -> (B, frames_out, H, W);
with ``frames_out`` = 10 one application is the whole hour, so it is trained through 60 minutes.
"""

from __future__ import annotations

import torch
from torch import nn

from training.nets.flow import CONF_POWER, TIKHONOV, WINDOW_PX, lucas_kanade, trajectories, warp
from training.nets.unet import UNet

EVOLUTIONS = ("lagrangian", "eulerian")


class LagrangianNowcaster(nn.Module):
    def __init__(
        self,
        frames_in: int = 3,
        frames_out: int = 10,
        base: int = 16,
        depth: int = 3,
        max_disp: float = 2.0,
        motion_base: int = 8,
        evolution: str = "lagrangian",
        flow_smooth: float = 8.0,
        flow_reg: float = TIKHONOV,
        flow_window: float = WINDOW_PX,
        flow_conf_power: float = CONF_POWER,
    ) -> None:
        super().__init__()
        if evolution not in EVOLUTIONS:
            raise ValueError(f"evolution must be one of {EVOLUTIONS}, not {evolution!r}")
        self.motion = UNet(in_channels=frames_in + 2, num_classes=2, base=motion_base, depth=depth)
        evo_in = frames_in + (frames_in - 1 if evolution == "lagrangian" else frames_out)
        self.evolution = UNet(in_channels=evo_in, num_classes=frames_out, base=base, depth=depth)
        for head in (self.motion.outc.conv, self.evolution.outc.conv):  # start as pure extrapolation
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.frames_in, self.frames_out, self.max_disp, self.mode = frames_in, frames_out, max_disp, evolution
        self.flow_smooth, self.flow_reg, self.flow_window = flow_smooth, flow_reg, flow_window
        self.flow_conf_power = flow_conf_power
        self.config = {
            "frames_in": frames_in,
            "frames_out": frames_out,
            "base": base,
            "depth": depth,
            "max_disp": max_disp,
            "motion_base": motion_base,
            "evolution": evolution,
            "flow_smooth": flow_smooth,
            "flow_reg": flow_reg,
            "flow_window": flow_window,
            "flow_conf_power": flow_conf_power,
        }

    def serve_as(self, flow_smooth: float, evolution_gain: float = 1.0) -> None:
        """Another in-graph flow smoothing, and the evolution's changes scaled by ``evolution_gain`` (its
        output layer's weights and bias: the same graph) - what ``training.nowcast_calibrate`` chooses on
        validation sequences after training."""
        self.flow_smooth = self.config["flow_smooth"] = float(flow_smooth)
        head = self.evolution.outc.conv
        with torch.no_grad():
            head.weight.mul_(evolution_gain)
            head.bias.mul_(evolution_gain)

    def displacement(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2, H, W): pixels per time step (dy, dx) - the optical flow plus the learned correction."""
        flow = lucas_kanade(
            x, window=self.flow_window, reg=self.flow_reg, smooth=self.flow_smooth, conf_power=self.flow_conf_power
        )
        return flow + self.max_disp * torch.tanh(self.motion(torch.cat([x, flow / 4.0], dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.displacement(x)
        paths = trajectories(v, self.frames_out)
        last = x[:, -1:]
        moved = [warp(last, d) for d in paths]
        if self.mode == "eulerian":
            change = self.evolution(torch.cat([x, *moved], dim=1))
            out = [m + change[:, k : k + 1] for k, m in enumerate(moved)]
        else:  # changes along the motion over the observed steps, newest first
            n = self.frames_in
            along = [x[:, i + 1 : i + 2] - warp(x[:, i : i + 1], v) for i in reversed(range(n - 1))]
            change = self.evolution(torch.cat([x, *along], dim=1))  # on the latest frame's grid
            out = [warp(last + change[:, k : k + 1], d) for k, d in enumerate(paths)]
        return torch.relu(torch.cat(out, dim=1))
