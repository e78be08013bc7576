"""Dense Lucas-Kanade optical flow inside the network graph: the motion that extrapolation would use.

Classical, not learned: coarse to fine over an image pyramid, at each level the earlier frames are
warped by the current estimate and the windowed least-squares (Lucas & Kanade 1981) increment is
solved in closed form per pixel (a 2 x 2 system, Tikhonov-regularised so that dry areas do not
move by accident). Consecutive frame pairs share one constant-velocity field: frame ``t`` equals
frame ``t - 1`` displaced by ``v`` pixels per step. Where there is no rain to track, the field is
filled in from the nearby rain by normalised convolution, so echoes flowing into a dry pixel come
from the right place. Only convolutions, pooling, elementwise arithmetic and ``grid_sample``: it
exports to ONNX (``GridSample``) at any H x W that is a multiple of ``2 ** (levels - 1)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# the least-squares window (px at every pyramid level) and Tikhonov term every committed card's flow has:
# the defaults of ``lucas_kanade``, ``LagrangianNowcaster`` and ``NowcastConfig`` alike
WINDOW_PX = 8.0
TIKHONOV = 1e-5
CONF_POWER = 1.0  # the fill-in weights: the least squares' determinant (normalised), to this power


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W), edges replicated (every channel alike)."""
    radius = max(1, int(math.ceil(2.5 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = (k / k.sum()).to(x.dtype).to(x.device)
    b, c, h, w = x.shape
    y = F.pad(x.reshape(b * c, 1, h, w), (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(F.conv2d(y, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return y.reshape(b, c, h, w)


def warp(frame: torch.Tensor, disp: torch.Tensor, k: float = 1.0) -> torch.Tensor:
    """(B, C, H, W) sampled at p - k * disp(p) (disp (B, 2, H, W) in pixels: dy, dx); edges repeat."""
    _, _, h, w = frame.shape
    ys = torch.arange(h, dtype=frame.dtype, device=frame.device)
    xs = torch.arange(w, dtype=frame.dtype, device=frame.device)
    gy = ys.view(1, h, 1) - k * disp[:, 0]
    gx = xs.view(1, 1, w) - k * disp[:, 1]
    # pixel positions -> [-1, 1] (align_corners=True: -1 and 1 are the centres of the edge pixels)
    grid = torch.stack([2 * gx / (w - 1) - 1, 2 * gy / (h - 1) - 1], dim=-1)
    return F.grid_sample(frame, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences (d/dy, d/dx) of (B, 1, H, W), edges replicated."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return (p[:, :, 2:, 1:-1] - p[:, :, :-2, 1:-1]) / 2, (p[:, :, 1:-1, 2:] - p[:, :, 1:-1, :-2]) / 2


def _increment(frames: torch.Tensor, v: torch.Tensor, window: float, reg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One Lucas-Kanade step at one level: (increment (B, 2, H, W), confidence (B, 1, H, W))."""
    a11 = a12 = a22 = b1 = b2 = 0.0
    for i in range(frames.shape[1] - 1):
        prev, curr = frames[:, i : i + 1], frames[:, i + 1 : i + 2]
        moved = warp(prev, v)  # prev displaced by the current estimate
        gy, gx = _gradients((moved + curr) / 2)
        diff = moved - curr  # gy * dy + gx * dx = diff to first order
        a11, a12, a22 = a11 + gy * gy, a12 + gy * gx, a22 + gx * gx
        b1, b2 = b1 + gy * diff, b2 + gx * diff
    s = torch.cat([a11, a12, a22, b1, b2], dim=1)
    a11, a12, a22, b1, b2 = gaussian_blur(s, window).split(1, dim=1)
    a11, a22 = a11 + reg, a22 + reg
    det = a11 * a22 - a12 * a12
    dy = (a22 * b1 - a12 * b2) / det
    dx = (a11 * b2 - a12 * b1) / det
    return torch.cat([dy, dx], dim=1), det


def lucas_kanade(
    frames: torch.Tensor,
    levels: int = 3,
    iters: int = 3,
    window: float = WINDOW_PX,
    reg: float = TIKHONOV,
    fill_sigma: float = 8.0,
    presmooth: float = 0.5,
    smooth: float = 8.0,
    conf_power: float = CONF_POWER,
) -> torch.Tensor:
    """(B, T, H, W) consecutive frames, oldest first -> (B, 2, H, W) displacement (dy, dx), px per step.

    ``window`` is the Gaussian window of the least squares at every level (so it covers
    ``window * 2 ** level`` pixels of the full grid at the coarsest); ``reg`` the Tikhonov term;
    ``fill_sigma`` (coarsest-level pixels) how far the field spreads from where rain is tracked,
    ``smooth`` (full-grid pixels) the same confidence-weighted smoothing of the final field;
    ``conf_power`` sharpens that confidence (2: a well-tracked pixel's motion outweighs a weak one's more). The
    defaults were chosen on validation sequences (seeds 500,000 +), against pysteps' LK + semi-Lagrangian
    extrapolation: MAE within 0.1 dBZ of it at every lead, CSI 30 dBZ within 0.02.
    """
    frames = gaussian_blur(frames, presmooth)
    pyramid = [frames]
    for _ in range(levels - 1):
        pyramid.append(F.avg_pool2d(pyramid[-1], 2))
    b, _, h, w = pyramid[-1].shape
    v = frames.new_zeros(b, 2, h, w)
    for level in range(levels - 1, -1, -1):
        f = pyramid[level]
        if v.shape[-2:] != f.shape[-2:]:
            v = 2 * F.interpolate(v, size=f.shape[-2:], mode="bilinear", align_corners=False)
        for _ in range(iters):
            dv, conf = _increment(f, v, window, reg)
            v = v + dv.clamp(-2.0, 2.0)  # at most 2 px per iteration and level: linearisation holds
        if level == levels - 1 or (level == 0 and smooth > 0):  # dry areas from the tracked rain (normalised conv.)
            c = conf / (conf.amax(dim=(2, 3), keepdim=True) + 1e-12)
            if conf_power != 1.0:  # at 1 the graph stays the one every earlier card exported
                c = c.clamp_min(0.0) ** conf_power
            sig = fill_sigma if level else smooth
            v = gaussian_blur(v * c, sig) / (gaussian_blur(c, sig) + 1e-6)
    return v


def trajectories(v: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """Backward displacements D_1..D_steps (each (B, 2, H, W)) along the velocity ``v``:
    D_k(p) = D_(k-1)(p) + v(p - D_(k-1)(p)) - where the echo at p after k steps comes from."""
    out = [v]
    for _ in range(steps - 1):
        out.append(out[-1] + warp(v, out[-1]))  # plus the velocity found where the trajectory was a step earlier
    return out


def extrapolate(frame: torch.Tensor, v: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """Semi-Lagrangian extrapolation of (B, C, H, W) along the velocity ``v`` for ``steps`` steps: the
    frame sampled once at p - D_k(p) for each step (``trajectories``) - no repeated interpolation, so
    echoes do not blur step by step (what pysteps' ``semilagrangian`` does)."""
    return [warp(frame, d) for d in trajectories(v, steps)]


@torch.no_grad()
def trajectories_inside(frames: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, T, H, W) -> (B, steps, H, W) bool: where the Lucas-Kanade extrapolation's backward trajectory
    to each lead still starts inside the grid - the pixels extrapolation can forecast at all (elsewhere
    the echo would flow in from outside; pysteps leaves those NaN and the verification skips them)."""
    _, _, h, w = frames.shape
    ys = torch.arange(h, dtype=frames.dtype, device=frames.device).view(1, h, 1)
    xs = torch.arange(w, dtype=frames.dtype, device=frames.device).view(1, 1, w)
    out = []
    for d in trajectories(lucas_kanade(frames), steps):
        sy, sx = ys - d[:, 0], xs - d[:, 1]
        out.append((sy >= 0) & (sy <= h - 1) & (sx >= 0) & (sx <= w - 1))
    return torch.stack(out, dim=1)
