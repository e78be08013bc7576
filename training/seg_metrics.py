"""Segmentation metrics: pixel IoU and Dice per class, object-level F1 at an IoU threshold."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def pixel_scores(pred: np.ndarray, truth: np.ndarray, classes: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for k, name in enumerate(classes):
        p, t = pred == k, truth == k
        inter, union, total = np.logical_and(p, t).sum(), np.logical_or(p, t).sum(), p.sum() + t.sum()
        out[name] = {"iou": float(inter / union) if union else 1.0, "dice": float(2 * inter / total) if total else 1.0}
    return out


def match_objects(pred: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int]:
    """One-to-one matching of predicted and true objects by IoU (Hungarian); (tp, fp, fn) at IoU >= threshold."""
    n_p, n_t = int(pred.max()), int(truth.max())
    if n_p == 0 or n_t == 0:
        return 0, n_p, n_t
    # overlap counts between every (truth, pred) label pair, background included at index 0
    overlap = np.zeros((n_t + 1, n_p + 1), np.int64)
    np.add.at(overlap, (truth.ravel(), pred.ravel()), 1)
    area_t, area_p = overlap.sum(1, keepdims=True), overlap.sum(0, keepdims=True)
    iou = overlap / np.maximum(area_t + area_p - overlap, 1)
    iou = iou[1:, 1:]  # (n_t, n_p)
    rows, cols = linear_sum_assignment(-iou)
    tp = int((iou[rows, cols] >= threshold).sum())
    return tp, n_p - tp, n_t - tp


def f1_from_counts(counts: np.ndarray) -> np.ndarray:
    """Object F1 from summed (tp, fp, fn) in the last axis: 2 tp / (2 tp + fp + fn), 0 with no objects at all
    (the harmonic mean of precision and recall, written so that it also takes a batch of resamples)."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    return 2 * tp / np.maximum(2 * tp + fp + fn, 1)


def object_f1(preds: list[np.ndarray], truths: list[np.ndarray], threshold: float = 0.5) -> dict[str, float]:
    tp = fp = fn = 0
    for p, t in zip(preds, truths):
        a, b, c = match_objects(p, t, threshold)
        tp, fp, fn = tp + a, fp + b, fn + c
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    f1 = float(f1_from_counts(np.array([tp, fp, fn])))
    return {"f1": f1, "precision": precision, "recall": recall, "tp": tp, "fp": fp, "fn": fn}
