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


def border_term(
    instances: np.ndarray, w0: float = 10.0, sigma: float = 5.0, where: np.ndarray | None = None
) -> np.ndarray:
    """w0 * exp(-(d1 + d2)^2 / (2 sigma^2)) on background pixels, or on the pixels ``where`` is True
    (0 where fewer than two objects)."""
    ids = [i for i in np.unique(instances) if i != 0]
    out = np.zeros(instances.shape, np.float64)
    if len(ids) < 2:
        return out
    # distance of every pixel to each object; keep the two smallest per pixel
    dists = np.stack([ndi.distance_transform_edt(instances != i) for i in ids])  # (N, H, W)
    two = np.partition(dists, 1, axis=0)[:2]  # (2, H, W): d1 <= d2
    term = w0 * np.exp(-((two[0] + two[1]) ** 2) / (2 * sigma**2))
    return np.where(instances == 0 if where is None else where, term, 0.0)


def unet_weight_map(
    classes: np.ndarray,
    instances: np.ndarray,
    num_classes: int,
    w0: float = 10.0,
    sigma: float = 5.0,
    contact: bool = False,
) -> np.ndarray:
    """The full weight map for one image: class balance plus the border term (float32, H x W).

    The paper's labels part touching cells by a gap of background, where its border term falls. Ours
    keep the cells whole and mark their contact as a border class (2) of cell pixels, which the term
    on the background never reaches; ``contact`` puts it on those pixels too (d1 = 0 there: about w0)."""
    where = (instances == 0) | (classes == 2) if contact else None
    term = border_term(instances, w0, sigma, where)
    return (class_balance_weights(classes, num_classes) + term).astype(np.float32)


def edge_distance(instances: np.ndarray) -> np.ndarray:
    """Per object, the distance of each of its pixels to its own edge (touching objects count as edge),
    divided by the object's largest: 1 at each centre, falling to 0 at the edge and on the background
    (float32, H x W) - the target of a segmenter's distance channel (as in Naylor et al. 2018)."""
    out = np.zeros(instances.shape, np.float32)
    for i, sl in enumerate(ndi.find_objects(instances), start=1):
        if sl is None:
            continue
        sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
        mask = instances[sl] == i
        d = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]  # a cell cut by the image ends at its edge
        if d.max() > 0:
            out[sl][mask] = (d / d.max())[mask]
    return out
