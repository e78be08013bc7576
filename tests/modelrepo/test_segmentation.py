"""Instances from a class map, and their measurements."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from modelrepo.segmentation import instances_from_classes, measure


def test_touching_cells_split_by_their_border_and_cover_it() -> None:
    classes = np.zeros((20, 30), np.uint8)
    classes[5:15, 3:27] = 1
    classes[5:15, 14:16] = 2  # a border line splits one blob into two cells
    inst = instances_from_classes(classes, object_class=1, border_class=2)
    assert inst.max() == 2
    assert (inst > 0).sum() == (classes > 0).sum()  # border pixels joined a cell
    for lab in (1, 2):
        assert ndi.label(inst == lab)[1] == 1  # every label one connected region


def test_min_size_drops_specks_and_relabels() -> None:
    classes = np.zeros((20, 20), np.uint8)
    classes[2:10, 2:10] = 1
    classes[15, 15] = 1
    assert instances_from_classes(classes, 1, 2, min_size=5).max() == 1
    assert instances_from_classes(classes, 1, 2).max() == 2
    assert instances_from_classes(np.zeros((5, 5), np.uint8), 1, 2).max() == 0


def test_measure_reports_area_centroid_bbox_intensity() -> None:
    inst = np.zeros((10, 12), np.int32)
    inst[2:4, 3:7] = 1
    raw = np.full((10, 12), 7.0)
    (row,) = measure(inst, raw)
    assert row == {
        "label": 1,
        "area": 8,
        "centroid_x": 4.5,
        "centroid_y": 2.5,
        "bbox": [3, 2, 7, 4],
        "mean_intensity": 7.0,
    }
