"""Label-safe batch augmentation on normalised tensors: small random affine warps, optional flips."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(
    x: torch.Tensor,
    g: torch.Generator,
    rotate_deg: float = 10.0,
    translate: float = 0.08,
    scale: tuple[float, float] = (0.9, 1.1),
    hflip: bool = False,
) -> torch.Tensor:
    """Warp each image of ``x`` (B, C, H, W) by its own rotation, shift (fraction of size) and zoom.

    Border padding repeats the edge pixels (the background for digits), so no artificial frame
    appears. Horizontal flips only when asked: they change what a digit means.
    """
    b = x.shape[0]
    angle = (torch.rand(b, generator=g) * 2 - 1) * math.radians(rotate_deg)
    zoom = torch.empty(b).uniform_(scale[0], scale[1], generator=g)
    shift = (torch.rand(b, 2, generator=g) * 2 - 1) * translate * 2  # normalised coords span 2
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0) if hflip else torch.ones(b)
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1
    )  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
