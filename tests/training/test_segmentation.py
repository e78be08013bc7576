"""Segmentation training pieces: weight map, cell generator, U-Net, a tiny run, export parity."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from modelrepo.repository import check_model_dir
from training.data.cells import classes_from_instances, elastic_deform, make_cell_dataset
from training.data.cells_alt import make_alt_cell_dataset
from training.loop import Run
from training.nets.unet import UNet
from training.seg_metrics import match_objects, object_f1, pixel_scores
from training.tasks.segment import SegmentConfig, train_segmenter
from training.tasks.segment_eval import baseline_instances
from training.weight_map import border_term, class_balance_weights, unet_weight_map


def two_cells(gap: int = 2) -> np.ndarray:
    inst = np.zeros((40, 60), np.int32)
    inst[10:30, 5:25] = 1
    inst[10:30, 25 + gap : 45 + gap] = 2
    return inst


def test_border_term_on_the_two_cell_example() -> None:
    term = border_term(two_cells(gap=2), w0=10, sigma=5)
    # the gap pixel next to cell 1 has d1 = 1 and d2 = 2: 10 * exp(-9 / 50) = 8.35
    assert term[20, 25] == pytest.approx(10 * math.exp(-9 / 50)) == pytest.approx(8.3527, abs=1e-4)
    assert term[20, 26] == pytest.approx(10 * math.exp(-9 / 50))
    assert term[20, 10] == 0.0  # inside a cell: no border term
    assert term[0, 0] < term[20, 25]  # far from both cells the term fades
    assert border_term(two_cells()[:, :26]).max() == 0.0  # one object: no term


def test_contact_weight_puts_the_border_term_on_the_contact_between_touching_cells() -> None:
    inst = two_cells(gap=0)  # touching at columns 24 | 25
    classes = classes_from_instances(inst)
    plain = unet_weight_map(classes, inst, 3)
    contact = unet_weight_map(classes, inst, 3, contact=True)
    # a contact pixel of cell 1 has d1 = 0 (inside it) and d2 = 1 (cell 2 next door): 10 * exp(-1 / 50)
    assert contact[20, 24] - plain[20, 24] == pytest.approx(10 * math.exp(-1 / 50), rel=1e-6)
    assert contact[20, 10] == plain[20, 10] and contact[0, 0] == plain[0, 0]  # cell interiors, background alike
    assert plain[20, 24] == pytest.approx(class_balance_weights(classes, 3)[20, 24])  # before: class balance only


def test_class_balance_gives_every_class_the_same_total_weight() -> None:
    classes = np.array([[0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2]])
    w = class_balance_weights(classes, 3)
    totals = [w[classes == k].sum() for k in range(3)]
    np.testing.assert_allclose(totals, totals[0])
    full = unet_weight_map(classes_from_instances(two_cells()), two_cells(), 3)
    assert full.dtype == np.float32 and full[20, 25] > full[0, 0]


def test_outline_makes_every_cells_outer_ring_border_and_instances_survive_it() -> None:
    inst = two_cells(gap=0)  # touching: 5:25 and 25:45
    inst[0:6, 50:60] = 3  # a cell cut by the image's top and right edges
    touching, outline = classes_from_instances(inst), classes_from_instances(inst, outline=True)
    assert touching[10, 10] == 1 and touching[20, 5] == 1  # the paper's: a cell's edge beside background is cell
    assert (touching[20, 24:26] == 2).all() and touching[20, 23] == 1
    assert outline[10, 10] == 2 and outline[20, 5] == 2 and outline[20, 44] == 2  # every ring, not only the seam
    assert (outline[20, 24:26] == 2).all() and outline[20, 6] == 1
    assert outline[0, 55] == 1 and outline[2, 59] == 1 and outline[5, 55] == 2  # the image's edge is not a border
    np.testing.assert_array_equal(outline > 0, inst > 0)  # the foreground is the same
    # the served pipeline (interiors, every foreground pixel to its nearest) gives back the three cells
    from modelrepo.segmentation import instances_from_classes

    back = instances_from_classes(outline, object_class=1, border_class=2)
    assert back.max() == 3
    for k in (1, 2, 3):
        labels, counts = np.unique(back[inst == k], return_counts=True)
        assert counts.max() / counts.sum() > 0.9 and labels[counts.argmax()] != 0


def test_contact_px_widens_the_line_where_cells_touch_and_only_there() -> None:
    from modelrepo.segmentation import instances_from_classes

    inst = two_cells(gap=0)  # touching at columns 24 | 25
    inst[32:40, 5:15] = 3  # alone
    one, wide = classes_from_instances(inst), classes_from_instances(inst, contact_px=2)
    np.testing.assert_array_equal(classes_from_instances(inst, contact_px=1), one)  # 1: the paper's 2 px line
    assert (one[20, 24:26] == 2).all() and one[20, 23] == 1 and one[20, 26] == 1
    assert (wide[20, 23:27] == 2).all() and wide[20, 22] == 1 and wide[20, 27] == 1  # 2 px each side
    assert (wide[32:40, 5:15] == 1).all() and wide[20, 5] == 1  # a lone cell, a cell's free edge: no border
    np.testing.assert_array_equal(wide > 0, inst > 0)
    back = instances_from_classes(wide, object_class=1, border_class=2)
    assert back.max() == 3 and all(len(np.unique(back[inst == k])) == 1 for k in (1, 2, 3))  # cells come back


def test_generator_is_deterministic_and_consistent() -> None:
    a, b = make_cell_dataset(3, seed=5, size=96), make_cell_dataset(3, seed=5, size=96)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.instances, y.instances)
    for c in a:
        assert c.image.dtype == np.uint16 and c.image.shape == (96, 96)
        assert c.instances.max() >= 3
        np.testing.assert_array_equal(c.classes, classes_from_instances(c.instances))
        assert set(np.unique(c.classes)) <= {0, 1, 2}
        assert (c.classes == 2).sum() > 0  # cells touch: there are borders to learn
        assert c.image[c.instances > 0].mean() > 2 * c.image[c.instances == 0].mean()  # cells are bright
    assert not np.array_equal(a[0].image, make_cell_dataset(1, seed=6, size=96)[0].image)


def test_elastic_deformation_moves_pixels_but_keeps_labels_valid() -> None:
    c = make_cell_dataset(1, seed=1, size=96)[0]
    img, inst = elastic_deform(c.image, c.instances, np.random.default_rng(0))
    assert img.shape == c.image.shape and img.dtype == c.image.dtype
    assert not np.array_equal(inst, c.instances)
    assert set(np.unique(inst)) <= set(np.unique(c.instances))


@pytest.mark.parametrize("shape", [(64, 64), (37, 53), (8, 9)])
def test_unet_any_size(shape: tuple[int, int]) -> None:
    net = UNet(in_channels=1, num_classes=3, base=4, depth=3).eval()
    with torch.no_grad():
        y = net(torch.randn(2, 1, *shape))
    assert y.shape == (2, 3, *shape) and torch.isfinite(y).all()


def test_metrics_match_objects_one_to_one() -> None:
    truth = two_cells()
    assert match_objects(truth, truth) == (2, 0, 0)
    merged = (truth > 0).astype(np.int32)  # the two touching cells predicted as one object
    tp, fp, fn = match_objects(merged, truth)
    assert tp <= 1 and fn >= 1
    assert object_f1([truth], [truth])["f1"] == 1.0
    scores = pixel_scores(classes_from_instances(truth), classes_from_instances(truth), ["bg", "cell", "border"])
    assert all(v["iou"] == 1.0 for v in scores.values())


def test_baseline_finds_separate_cells() -> None:
    c = make_cell_dataset(1, seed=3, size=128)[0]
    base = baseline_instances(c.image)
    assert base.max() >= 0.5 * c.instances.max()


def test_tiny_training_lowers_loss_and_exports_with_parity_at_two_sizes(tmp_path: Path) -> None:
    cfg = SegmentConfig(
        n_train=8, n_val=2, n_test=3, n_cross=2, size=64, base=4, depth=3, epochs=3, batch_size=4,
        out=str(tmp_path / "runs"), ema=None,
    )  # fmt: skip
    r = train_segmenter(cfg, run=Run(export_to=tmp_path / "models", progress=False))
    assert r["history"][-1]["train_loss"] < r["history"][0]["train_loss"]
    assert set(r["scores"]) == {"own", "cross", "cross_x2", "first"}  # every held-out set, both methods, baseline
    assert set(r["scores"]["cross"]) == {"components", "watershed", "baseline", "given_diameter"}
    # the resumable checkpoint: a second call with --resume continues (here: nothing left) and re-exports
    r2 = train_segmenter(
        cfg, run=Run(export_to=tmp_path / "models", progress=False, resume=True, overwrite=True, version=1)
    )
    assert r2["history"] == r["history"]
    entry = check_model_dir(tmp_path / "models" / "unet_cells")
    assert entry.ok, entry.problems
    card = entry.card
    assert card.task == "segmentation" and card.input.height == "any" and card.input.normalization == "percentile"
    assert card.export.dynamic_axes == ["batch", "height", "width"]
    assert "dims: [ 1, -1, -1 ]" in (entry.path / "config.pbtxt").read_text()
    assert (tmp_path / "runs" / "unet_cells" / "panel.png").stat().st_size > 10_000


def test_user_mask_folder_with_instance_and_class_masks(tmp_path: Path) -> None:
    import tifffile
    from PIL import Image

    from training.data.mask_folder import load_mask_folder

    cells = make_cell_dataset(10, seed=11, size=64)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i, c in enumerate(cells):
        tifffile.imwrite(tmp_path / "images" / f"{i:02d}.tif", c.image)
        if i % 2:  # instance ids as 16-bit PNG
            Image.fromarray(c.instances.astype(np.uint16)).save(tmp_path / "masks" / f"{i:02d}.png")
        else:  # class ids as TIFF
            tifffile.imwrite(tmp_path / "masks" / f"{i:02d}.tif", c.classes)
    data = load_mask_folder(tmp_path, seed=0)
    assert sorted(len(v) for v in data.values()) == [1, 2, 7]
    for c in data["train"]:
        assert c.image.dtype == np.uint16 and c.instances.max() >= 3
        np.testing.assert_array_equal(c.classes, classes_from_instances(c.instances))
    cfg = SegmentConfig(
        data="folder", data_dir=str(tmp_path), base=4, depth=2, epochs=1, batch_size=4, out=str(tmp_path / "runs")
    )
    r = train_segmenter(cfg, run=Run(export_to=tmp_path / "models", progress=False))
    from training.eval_repo import evaluate_repository

    (res,) = evaluate_repository(tmp_path / "models")
    assert res.ok, res.message
    assert r["exported"]


def test_domain_randomised_generator_varies_what_microscopes_vary() -> None:
    from modelrepo.segmentation import equivalent_diameters
    from training.data.cells_random import make_random_cell_dataset

    data = make_random_cell_dataset(40, seed=3)
    again = make_random_cell_dataset(2, seed=3)
    np.testing.assert_array_equal(data[0].image, again[0].image)
    assert {c.image.dtype for c in data} == {np.dtype(np.uint8), np.dtype(np.uint16)}
    assert any(c.image.dtype == np.uint16 and c.image.max() <= 4095 for c in data)  # 12-bit cameras too
    medians = [np.median(equivalent_diameters(c.instances)) for c in data if c.instances.max()]
    assert min(medians) < 14 and max(medians) > 35  # small and large cells
    counts = [int(c.instances.max()) for c in data]
    assert min(counts) <= 5 and max(counts) >= 40  # sparse and crowded
    for c in data:
        np.testing.assert_array_equal(c.classes, classes_from_instances(c.instances))


def test_train_radius_narrows_the_training_split_only_and_is_a_two_number_flag() -> None:
    import argparse

    from modelrepo.segmentation import equivalent_diameters
    from training.__main__ import _add_dataclass_args
    from training.tasks.segment import SegmentConfig, splits

    p = argparse.ArgumentParser()
    _add_dataclass_args(p, SegmentConfig)
    assert p.parse_args(["--train-radius", "4", "11"]).train_radius == [4.0, 11.0]
    assert p.parse_args([]).train_radius is None
    assert SegmentConfig(train_radius=[4, 11]).train_radius == (4.0, 11.0)  # the resume key: CLI list == recipe tuple
    cfg = SegmentConfig(n_train=30, n_val=30, n_test=2, train_radius=(4.0, 11.0))
    data = splits(cfg, only=("train", "val"))
    train = [np.median(equivalent_diameters(c.instances)) for c in data["train"] if c.instances.max()]
    val = [np.median(equivalent_diameters(c.instances)) for c in data["val"] if c.instances.max()]
    assert max(train) < 24 and max(val) > 30  # validation keeps the big cells the served pipeline rescales
    whole = splits(SegmentConfig(n_train=2, n_val=30, n_test=2), only=("val",))["val"]
    np.testing.assert_array_equal(whole[5].image, data["val"][5].image)  # the same validation images


def test_stacked_cells_own_their_overlap_and_stacking_is_for_the_training_split_only() -> None:
    from training.data.cells_random import _topmost, make_random_cell_dataset
    from training.tasks.segment import SegmentConfig, splits

    yy, xx = np.mgrid[0:20, 0:30].astype(float)
    q = np.stack([np.hypot(yy - 10, xx - 10) / 6, np.hypot(yy - 10, xx - 18) / 6])  # two discs, overlapping
    owner = _topmost(q)
    assert owner[10, 13] == 1 and q.argmin(0)[10, 13] == 0  # the upper (later) cell owns the whole overlap
    assert owner[10, 5] == 0 and owner[0, 0] == q.argmin(0)[0, 0]  # elsewhere: its own cell, or the nearest
    plain, stacked = make_random_cell_dataset(6, seed=4), make_random_cell_dataset(6, seed=4, occlude=1.0)
    np.testing.assert_array_equal(plain[0].image, make_random_cell_dataset(1, seed=4, occlude=0.0)[0].image)
    assert any(not np.array_equal(a.instances, b.instances) for a, b in zip(plain, stacked))
    for c in stacked:
        np.testing.assert_array_equal(c.classes, classes_from_instances(c.instances))
    base, occl = SegmentConfig(n_train=4, n_val=3, n_test=1), SegmentConfig(n_train=4, n_val=3, n_test=1, occlude=1.0)
    a, b = splits(base, only=("train", "val")), splits(occl, only=("train", "val"))
    assert any(not np.array_equal(x.instances, y.instances) for x, y in zip(a["train"], b["train"]))
    for x, y in zip(a["val"], b["val"]):
        np.testing.assert_array_equal(x.instances, y.instances)


def test_second_generator_is_deterministic_and_labelled() -> None:

    a, b = make_alt_cell_dataset(3, seed=9), make_alt_cell_dataset(3, seed=9)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.instances, y.instances)
        assert x.instances.max() >= 2
        assert x.image[x.instances > 0].mean() > x.image[x.instances == 0].mean()


def test_magnified_cells_keep_their_labels_and_grow() -> None:
    from training.tasks.segment import magnified

    c = make_alt_cell_dataset(1, seed=5)[0]
    (m,) = magnified([c], 2)
    assert m.image.shape == tuple(2 * n for n in c.image.shape) and m.image.dtype == c.image.dtype
    assert set(np.unique(m.instances)) == set(np.unique(c.instances))
    assert np.bincount(m.instances.ravel())[1:].sum() == 4 * np.bincount(c.instances.ravel())[1:].sum()
    assert (m.classes == classes_from_instances(m.instances)).all()


def test_generalisation_table_shows_the_given_diameter_column() -> None:
    from modelrepo.card import ModelCard
    from tests.conftest import MODELS
    from training.reports import segmentation_table

    card = ModelCard.load(MODELS / "unet_cells" / "card.json")
    header, _, *rows = segmentation_table(card).splitlines()
    assert "true diameter given" in header and len(rows) == 4
    cross = next(r for r in rows if r.startswith("| independent generator |"))
    assert f"| {card.metrics['cross_object_f1_given_diameter']:.3f} |" in cross


def test_edge_distance_peaks_at_each_cell_centre_and_is_zero_at_contacts() -> None:
    from training.weight_map import edge_distance

    inst = two_cells(gap=0)  # touching along a line
    d = edge_distance(inst)
    assert d[inst == 0].max() == 0 and d.max() == pytest.approx(1.0)
    for lab in (1, 2):
        assert d[inst == lab].max() == pytest.approx(1.0)  # normalised per cell
    assert d[20, 24] < 0.15 and d[20, 25] < 0.15  # on either side of the contact line: an edge
    assert d[20, 14] > 0.9 and d[20, 35] > 0.9  # the centres


def test_a_distance_channel_segmenter_trains_warm_starts_from_three_classes_and_exports(tmp_path: Path) -> None:
    """The fourth channel: its loss is part of training, the committed three-class model's head grows into
    it (the classes kept), validation chooses the core threshold, and the card serves it."""
    cfg = SegmentConfig(
        n_train=8, n_val=2, n_test=2, n_cross=2, size=64, base=4, depth=3, epochs=1, batch_size=4,
        out=str(tmp_path / "runs"), ema=None,
    )  # fmt: skip
    train_segmenter(cfg, run=Run(export_to=tmp_path / "three", progress=False))
    dist = SegmentConfig(**{**cfg.__dict__, "distance": 1.0, "name": "unet_cells_d"})
    r = train_segmenter(
        dist, run=Run(export_to=tmp_path / "four", progress=False, init_from=tmp_path / "three" / "unet_cells")
    )
    assert set(r["scores"]["cross"]) == {"components", "watershed", "distance", "baseline", "given_diameter"}
    card = check_model_dir(tmp_path / "four" / "unet_cells_d").card
    assert card.output.distance_channel == 3 and card.output.shape[0] == 4
    from training.tasks.segment_eval import DISTANCE_CORES

    assert card.output.distance_core in DISTANCE_CORES
    assert "object_f1_distance" in card.metrics
