"""From a class map to objects: instances, their measurements. Shared by evaluation and the service.

Classes follow the card: ``output.object_class`` (cell interior) and ``output.border_class`` (the
thin border between touching cells). Interiors are split into connected components, then every
foreground pixel (interior or border) joins its nearest component, so touching cells come out
as separate objects that still cover their whole area.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from modelrepo.preprocess import softmax


def instances_from_classes(
    classes: np.ndarray, object_class: int, border_class: int | None, min_size: int = 0
) -> np.ndarray:
    """(H, W) class ids -> (H, W) int32 instance labels, 0 background, 1..N objects (each connected)."""
    interior = classes == object_class
    foreground = interior | (classes == border_class) if border_class is not None else interior
    seeds, n = ndi.label(interior)  # 4-connectivity: a one-pixel border line separates two cells
    if n == 0:
        return np.zeros(classes.shape, np.int32)
    # every foreground pixel takes the label of the nearest seed pixel
    _, (iy, ix) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    labels = np.where(foreground, seeds[iy, ix], 0)
    return relabel(labels, min_size)


def relabel(labels: np.ndarray, min_size: int = 0) -> np.ndarray:
    """Keep, per label, its largest connected piece if at least min_size pixels; renumber 1..N."""
    out = np.zeros(labels.shape, np.int32)
    next_id = 1
    for sl, lab in zip(ndi.find_objects(labels), range(1, int(labels.max()) + 1)):
        if sl is None:
            continue
        pieces, k = ndi.label(labels[sl] == lab)
        if k == 0:
            continue
        sizes = np.bincount(pieces.ravel())[1:]
        keep = pieces == (1 + int(sizes.argmax()))
        if keep.sum() < max(min_size, 1):
            continue
        out[sl][keep] = next_id
        next_id += 1
    return out


def measure(labels: np.ndarray, intensity: np.ndarray) -> list[dict]:
    """Per object: label, area, centroid (x, y), bbox (x0, y0, x1, y1; exclusive ends), mean intensity."""
    n = int(labels.max())
    if n == 0:
        return []
    index = np.arange(1, n + 1)
    area = ndi.sum_labels(np.ones_like(labels), labels, index)
    cy, cx = np.asarray(ndi.center_of_mass(np.ones_like(labels), labels, index)).T
    mean = ndi.mean(intensity.astype(np.float64), labels, index)
    rows = []
    for i, sl in enumerate(ndi.find_objects(labels)):
        rows.append(
            {
                "label": i + 1,
                "area": int(area[i]),
                "centroid_x": round(float(cx[i]), 2),
                "centroid_y": round(float(cy[i]), 2),
                "bbox": [int(sl[1].start), int(sl[0].start), int(sl[1].stop), int(sl[0].stop)],
                "mean_intensity": round(float(mean[i]), 3),
            }
        )
    return rows


def activate(logits: np.ndarray, classes: int | None = None) -> np.ndarray:
    """(C, ...) logits -> the softmax of the first ``classes`` channels (all when None) and the sigmoid of
    the rest (a learned distance), float32."""
    n = logits.shape[0] if classes is None else classes
    probs = softmax(logits[:n], axis=0).astype(np.float32)
    if n == logits.shape[0]:
        return probs
    return np.concatenate([probs, (1.0 / (1.0 + np.exp(-logits[n:].astype(np.float64)))).astype(np.float32)])


def instances_from_probabilities(
    probs: np.ndarray,
    object_class: int,
    border_class: int | None,
    min_size: int = 0,
    method: str = "watershed",
    distance: tuple[int, float] | None = None,
) -> np.ndarray:
    """(C, H, W) class probabilities (and a learned distance channel) -> (H, W) int32 instances.

    ``watershed``: marker-controlled watershed - markers are the confident cell interiors
    (P(cell) - P(border) > 0.5), the elevation is the border probability (1 - P(cell) + P(border)),
    the flood stays inside the foreground (P(background) < 0.5). ``components``: the argmax class map's
    interiors grown into their borders (``instances_from_classes``). ``distance`` (``distance`` = (channel,
    core)): the same watershed from other markers - the cores where a learned distance to the cell's own edge
    exceeds ``core``, so touching cells can split by shape where no border line is seen. (Flooding the
    distance itself, 1 - d, was tried first: where its dips between cells are shallow the ridges fall in the
    wrong place - first generator, object F1 0.73 against 0.97 with the class elevation.)"""
    classes = probs if distance is None else probs[: distance[0]]
    if method == "components":
        return instances_from_classes(classes.argmax(0), object_class, border_class, min_size)
    p_obj = probs[object_class]
    p_border = probs[border_class] if border_class is not None else np.zeros_like(p_obj)
    foreground = p_obj + p_border > 0.5
    if method == "distance":
        if distance is None:
            raise ValueError("the distance method needs the distance channel")
        markers, n = ndi.label((probs[distance[0]] > distance[1]) & foreground)
    else:
        markers, n = ndi.label((p_obj - p_border) > 0.5)
    height = 1.0 - p_obj + p_border
    if n == 0:
        return np.zeros(p_obj.shape, np.int32)
    elevation = np.round(np.clip(height, 0.0, 2.0) * 32767).astype(np.uint16)
    elevation[~foreground] = np.iinfo(np.uint16).max  # the outside never wins a foreground pixel
    seeds = markers.astype(np.int32)
    seeds[~foreground & (seeds == 0)] = -1  # background marker: floods the outside last
    labels = ndi.watershed_ift(elevation, seeds)
    labels = np.where(foreground & (labels > 0), labels, 0)
    return relabel(labels, min_size)


def equivalent_diameters(instances: np.ndarray) -> np.ndarray:
    """Per object, the diameter of the disc of the same area (pixels)."""
    areas = np.bincount(instances.ravel())[1:]
    areas = areas[areas > 0]
    return 2.0 * np.sqrt(areas / np.pi)
