"""The nowcasters' loss terms on (B, T, H, W) tensors on the network scale: the heavy-rain-weighted MAE
(optionally weighted per lead), the same error relative to a reference forecast, a soft CSI, and the
forecast as it is served (below the rain threshold: no rain) for the loss to see."""

from __future__ import annotations

import torch


def as_served(pred: torch.Tensor, threshold: float) -> torch.Tensor:
    """The forecast's rain / no-rain split as ``modelrepo.radar.from_network`` serves it without a calibrated
    rain decision value (one is chosen only after training) - values below the
    rain ``threshold`` (network scale) are no rain (0); its max_dbz ceiling is not applied - with a
    straight-through gradient. The data never holds a value
    between no rain and the threshold, so a network that hedges at a rain edge with a sub-threshold value
    is served a miss; this lets the loss see that (a wet pixel forecast dry still pulls the value up)."""
    hard = torch.where(pred >= threshold, pred, torch.zeros_like(pred))
    return pred + (hard - pred).detach()


def lead_weights(steps: int, power: float) -> torch.Tensor:
    """(steps,) weights lead ** -power (leads 1..steps), scaled to mean 1."""
    w = torch.arange(1, steps + 1, dtype=torch.float32) ** -power
    return w / w.mean()


def weighted_mae(
    pred: torch.Tensor,
    target: torch.Tensor,
    heavy_weight: float,
    mask: torch.Tensor | None = None,
    lead_power: float = 0.0,
) -> torch.Tensor:
    """Mean of |pred - target| x (1 + heavy_weight x target) over (B, T, H, W), where ``mask`` is set,
    each lead's errors weighted by ``lead_weights``."""
    err = (pred - target).abs() * (1 + heavy_weight * target)
    if lead_power:
        err = err * lead_weights(err.shape[1], lead_power).to(err).view(1, -1, 1, 1)
    return err.mean() if mask is None else (err * mask).sum() / mask.sum().clamp(min=1)


def relative_mae(
    pred: torch.Tensor,
    target: torch.Tensor,
    reference: torch.Tensor,
    heavy_weight: float,
    mask: torch.Tensor | None,
    floor: float,
) -> torch.Tensor:
    """Mean over sequences and leads of the forecast's weighted MAE divided by the reference forecast's
    (the same weights and pixels; the reference's error at least ``floor``). (B, T, H, W) tensors."""
    w = (1 + heavy_weight * target) * (torch.ones_like(target) if mask is None else mask)
    n = w.gt(0).sum(dim=(2, 3)).clamp(min=1)
    err = ((pred - target).abs() * w).sum(dim=(2, 3)) / n
    ref = ((reference - target).abs() * w).sum(dim=(2, 3)) / n
    return (err / ref.clamp(min=floor)).mean()


CSI_THRESHOLDS_DBZ = (20.0, 30.0, 40.0)


def soft_csi_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    thresholds: tuple[float, ...],
    tau: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over thresholds and leads of 1 - soft CSI: hits / (hits + misses + false alarms), with the
    forecast's exceedance a sigmoid of width ``tau`` (all on the network scale), pooled over the batch.
    (B, T, H, W) tensors; a lead and threshold with no observed event counts 0 (the MAE sees false alarms there)."""
    keep = torch.ones_like(target) if mask is None else mask
    losses = []
    for thr in thresholds:
        p = torch.sigmoid((pred - thr) / tau) * keep
        t = (target >= thr).to(pred.dtype) * keep
        hits = (p * t).sum(dim=(0, 2, 3))  # (T,)
        union = (p + t - p * t).sum(dim=(0, 2, 3))
        events = t.sum(dim=(0, 2, 3))
        losses.append(torch.where(events > 0, 1 - hits / union.clamp(min=1e-6), torch.zeros_like(union)))
    return torch.stack(losses).mean()
