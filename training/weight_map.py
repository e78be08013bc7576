"""The U-Net paper's pixel weight map (Ronneberger et al., 2015, eq. 2).

w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))

w_c balances the class frequencies; d1 and d2 are the distances to the nearest and the
second-nearest object. The border term is applied to background pixels, where it forces the
network to learn the narrow gaps between touching objects.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def class_balance_weights(classes: np.ndarray, num_classes: int) -> np.ndarray:
    """w_c: each class gets total / (K * count), so every class carries the same total weight."""
    counts = np.bincount(classes.ravel(), minlength=num_classes).astype(np.float64)
    per_class = np.where(counts > 0, classes.size / (num_classes * np.maximum(counts, 1)), 0.0)
    return per_class[classes]


def border_term(instances: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """w0 * exp(-(d1 + d2)^2 / (2 sigma^2)) on background pixels (0 where fewer than two objects)."""
    ids = [i for i in np.unique(instances) if i != 0]
    out = np.zeros(instances.shape, np.float64)
    if len(ids) < 2:
        return out
    # distance of every pixel to each object; keep the two smallest per pixel
    dists = np.stack([ndi.distance_transform_edt(instances != i) for i in ids])  # (N, H, W)
    two = np.partition(dists, 1, axis=0)[:2]  # (2, H, W): d1 <= d2
    term = w0 * np.exp(-((two[0] + two[1]) ** 2) / (2 * sigma**2))
    return np.where(instances == 0, term, 0.0)


def unet_weight_map(
    classes: np.ndarray, instances: np.ndarray, num_classes: int, w0: float = 10.0, sigma: float = 5.0
) -> np.ndarray:
    """The full weight map for one image: class balance plus the border term (float32, H x W)."""
    return (class_balance_weights(classes, num_classes) + border_term(instances, w0, sigma)).astype(np.float32)
