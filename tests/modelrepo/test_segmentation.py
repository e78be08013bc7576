"""Instances from a class map, and their measurements."""

from __future__ import annotations

import numpy as np
import pytest
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


def _two_touching_discs() -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of two discs whose contact line is only *probably* border (P 0.55): the argmax
    map has a broken line, so connected components merge them; the watershed does not."""
    yy, xx = np.mgrid[0:40, 0:60]
    a, b = np.hypot(yy - 20, xx - 20) < 10, np.hypot(yy - 20, xx - 38) < 10
    fg = a | b
    p = np.zeros((3, 40, 60))
    p[0][~fg] = 1
    p[1][fg] = 1
    contact = fg & (np.abs(xx - 29) <= 1)
    p[1][contact], p[2][contact] = 0.45, 0.55
    p[1][contact & (yy == 20)], p[2][contact & (yy == 20)] = 0.6, 0.4  # one pixel of the line lost
    return p, fg


def test_watershed_splits_cells_whose_border_line_is_broken() -> None:
    from modelrepo.segmentation import instances_from_probabilities

    p, fg = _two_touching_discs()
    assert instances_from_probabilities(p, 1, 2, method="components").max() == 1  # merged through the gap
    ws = instances_from_probabilities(p, 1, 2, method="watershed")
    assert ws.max() == 2
    assert ((ws > 0) == fg).all()  # the objects cover the foreground, borders included


def test_watershed_finds_nothing_in_background() -> None:
    from modelrepo.segmentation import instances_from_probabilities

    p = np.zeros((3, 16, 16))
    p[0] = 1
    assert instances_from_probabilities(p, 1, 2).max() == 0


def test_equivalent_diameters() -> None:
    from modelrepo.segmentation import equivalent_diameters

    inst = np.zeros((50, 50), np.int32)
    yy, xx = np.mgrid[0:50, 0:50]
    inst[np.hypot(yy - 25, xx - 25) < 10] = 1
    (d,) = equivalent_diameters(inst)
    assert abs(d - 20) < 0.5


def test_unsure_foreground_counts_only_cell_and_border_pixels() -> None:
    from modelrepo.card import OutputSpec
    from modelrepo.cellseg import unsure_foreground

    out = OutputSpec(name="logits", kind="class_scores", shape=[3, "any", "any"], object_class=1, border_class=2)
    probs = np.zeros((3, 4, 4), np.float32)
    probs[0] = 0.6  # background everywhere, unsure: not counted
    probs[1] = 0.4
    probs[:, 0, :] = np.array([0.0, 0.95, 0.05])[:, None]  # a confident cell row
    probs[:, 1, :2] = np.array([0.2, 0.45, 0.35])[:, None]  # unsure between cell and border
    assert unsure_foreground(probs, out) == pytest.approx(2 / 6)
    probs[:] = np.array([1.0, 0.0, 0.0])[:, None, None]
    assert unsure_foreground(probs, out) == 1.0  # no cells at all: nothing to be sure of


def test_shrinking_averages_instead_of_aliasing() -> None:
    from modelrepo.cellseg import _resize

    rng = np.random.default_rng(0)
    noise = rng.standard_normal((256, 256)).astype(np.float32)
    small = _resize(noise, (64, 64))
    assert small.shape == (64, 64)
    assert small.std() < 0.5 * noise.std()  # a plain bilinear sample would keep the noise's full std
    assert _resize(small, (256, 256)).shape == (256, 256)


def test_target_scale_keeps_cells_in_the_native_range_at_their_size() -> None:
    from modelrepo.card import OutputSpec
    from modelrepo.cellseg import target_scale

    old = OutputSpec(kind="class_scores", shape=[3, "any", "any"], diameter_px=19.0, diameter_range=(7.0, 47.0))
    new = old.model_copy(update={"diameter_native": (7.0, 14.0)})
    assert target_scale(9.5, old) == pytest.approx(2.0)  # a card without the range: every size to the median
    assert target_scale(9.5, new) == 1.0 and target_scale(7.0, new) == 1.0 and target_scale(14.0, new) == 1.0
    assert target_scale(3.5, new) == pytest.approx(2.0)  # smaller: up to the range's low end
    assert target_scale(56.0, new) == pytest.approx(0.25)  # larger: down to its top


def test_calibration_picks_the_range_whose_worst_set_is_best() -> None:
    from training.seg_calibrate import best

    table = [
        (None, {"own": 0.60, "own given": 0.52, "first": 0.99}),
        ((7.0, 14.0), {"own": 0.63, "own given": 0.65, "first": 0.99}),
        ((7.0, 10.0), {"own": 0.61, "own given": 0.70, "first": 0.98}),  # best mean, worse worst set
    ]
    assert best(table) == (7.0, 14.0)
    table.append(((7.0, 12.0), {"own": 0.63, "own given": 0.66, "first": 0.99}))  # same worst, better mean
    assert best(table) == (7.0, 12.0)


def test_calibration_tries_higher_low_ends_below_the_chosen_top() -> None:
    from training.seg_calibrate import lows

    assert lows((7.27, 14.0)) == [(10.0, 14.0), (12.0, 14.0)]
    assert lows((7.27, 10.0)) == []


def _distance_logits(centres: list[tuple[int, int]], r: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a distance-channel segmenter for touching discs whose whole contact is classed cell
    (no border predicted at all: components see one blob) and whose distance channel peaks at each centre."""
    yy, xx = np.mgrid[0:40, 0:70]
    d = np.stack([1 - np.hypot(yy - y, xx - x) / r for y, x in centres]).max(axis=0)
    fg = d > 0
    logits = np.zeros((4, 40, 70), np.float32)
    logits[0][~fg], logits[1][fg] = 6.0, 6.0
    logits[3] = np.log(np.clip(d, 1e-3, 1 - 1e-3) / (1 - np.clip(d, 1e-3, 1 - 1e-3)))  # the sigmoid gives d back
    return logits, fg


def test_activate_softmaxes_the_classes_and_passes_the_distance_through_a_sigmoid() -> None:
    from modelrepo.segmentation import activate

    logits, _ = _distance_logits([(20, 20)])
    p = activate(logits, classes=3)
    np.testing.assert_allclose(p[:3].sum(axis=0), 1.0, rtol=1e-6)
    assert p[3].max() > 0.99 and p[3][20, 20] == p[3].max()  # the centre, not normalised with the classes
    np.testing.assert_allclose(activate(logits[:3]), activate(logits, classes=3)[:3])  # no distance: as before


def test_distance_cores_split_touching_cells_that_components_merge() -> None:
    from modelrepo.segmentation import activate, instances_from_probabilities

    logits, fg = _distance_logits([(20, 20), (20, 37), (20, 54)])
    p = activate(logits, classes=3)
    assert instances_from_probabilities(p, 1, 2, method="components", distance=(3, 0.5)).max() == 1
    inst = instances_from_probabilities(p, 1, 2, method="distance", distance=(3, 0.5))
    assert inst.max() == 3
    assert ((inst > 0) == fg).all()  # grown over the whole foreground
    assert inst[20, 20] != inst[20, 37] != inst[20, 54]
    with pytest.raises(ValueError, match="distance channel"):
        instances_from_probabilities(p[:3], 1, 2, method="distance")


def test_a_card_serving_distance_instances_names_its_channel() -> None:
    from pydantic import ValidationError

    from modelrepo.card import OutputSpec

    spec = dict(kind="class_scores", shape=[4, "any", "any"], object_class=1, border_class=2)
    with pytest.raises(ValidationError, match="distance_channel"):
        OutputSpec(**spec, instances="distance")
    out = OutputSpec(**spec, instances="distance", distance_channel=3)
    assert out.class_channels == 3 and OutputSpec(**spec).class_channels is None
