"""Datasets: the documented digits split, user folders, label-safe augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.augment import random_affine
from training.data import load_digits_splits, load_image_folder


def test_digits_split_is_fixed_stratified_and_disjoint() -> None:
    a, b = load_digits_splits(seed=0), load_digits_splits(seed=0)
    assert a.sizes == {"train": 1257, "val": 180, "test": 360}
    assert all(np.array_equal(x, y) for x, y in zip(a.test.images, b.test.images))
    counts = np.bincount(a.test.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 per class
    train = {im.tobytes() for im in a.train.images}
    overlap = sum(im.tobytes() in train for im in a.test.images)
    assert overlap <= 2  # digits has a few duplicate images; the split itself shares no index
    assert a.train.images[0].dtype == np.uint8 and a.train.images[0].shape == (8, 8)
    assert max(im.max() for im in a.train.images) <= 255


def test_other_seed_gives_other_split() -> None:
    a, c = load_digits_splits(seed=0), load_digits_splits(seed=1)
    assert not all(np.array_equal(x, y) for x, y in zip(a.test.images, c.test.images))


def test_image_folder_split_and_classes(bars_folder: Path) -> None:
    s = load_image_folder(bars_folder, seed=0)
    assert s.classes == ["blob", "horizontal", "vertical"]
    assert sum(s.sizes.values()) == 90
    assert s.train.images[0].shape == (20, 20, 3)
    assert s.source.startswith("folder:")


def test_image_folder_with_given_splits(tmp_path: Path, bars_folder: Path) -> None:
    import shutil

    for split in ("train", "val", "test"):
        shutil.copytree(bars_folder, tmp_path / split)
    s = load_image_folder(tmp_path)
    assert s.sizes == {"train": 90, "val": 90, "test": 90}


def test_augmentation_keeps_shape_and_identity_without_warp() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 32, 32)
    y = random_affine(x, g)
    assert y.shape == x.shape and not torch.allclose(x, y)
    same = random_affine(x, g, rotate_deg=0.0, translate=0.0, scale=(1.0, 1.0))
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)


def test_augmentation_never_flips_unless_asked() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, :, :4] = 1.0  # bright left edge
    y = random_affine(x, g, rotate_deg=5.0, translate=0.02)
    assert (y[:, 0, :, :4].mean((1, 2)) > y[:, 0, :, -4:].mean((1, 2))).all()
    flipped = random_affine(x, g, rotate_deg=0.0, translate=0.0, scale=(1.0, 1.0), hflip=True)
    assert (flipped[:, 0, :, -4:].mean((1, 2)) > 0.9).any()


def test_zoom_augmentation_magnifies_image_and_labels_together() -> None:
    from modelrepo.segmentation import equivalent_diameters
    from training.data.cells import augment_cells
    from training.data.cells_random import make_random_cell_dataset

    c = make_random_cell_dataset(1, seed=3)[0]
    before = np.median(equivalent_diameters(c.instances))
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(8):
        image, inst = augment_cells(c.image, c.instances, rng, elastic=False, zoom=1.0)
        assert image.shape == inst.shape == c.image.shape and inst.dtype == np.int32
        assert set(np.unique(inst)) <= set(np.unique(c.instances))  # labels resampled, never blended
        fg = inst > 0  # the image follows its labels: cells stay brighter than the background
        assert image[fg].mean() > image[~fg].mean()
        ratios.append(np.median(equivalent_diameters(inst)) / before)
    assert min(ratios) > 0.8 and np.median(ratios) > 1.3  # 1-3x, log-uniform (cut cells at the crop's edge)
    image, inst = augment_cells(c.image, c.instances, rng, elastic=False, zoom=0.0)
    assert sorted(np.unique(inst)) == sorted(np.unique(c.instances))  # no zoom: a rotation / flip only


def test_paper_uploads_are_dark_ink_on_unevenly_lit_paper_and_off_by_default() -> None:
    from sklearn.datasets import load_digits

    from training.uploads import random_upload

    digit = np.round(load_digits().images[0] * 255 / 16).astype(np.uint8)
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(20):  # paper_share 0 (the default): the random stream of the uploads before it existed
        x, y = random_upload(digit, a, 0.45), random_upload(digit, b, 0.45, 0.0)
        assert x.tobytes() == y.tobytes()
    rng, papers = np.random.default_rng(0), 0
    for _ in range(200):
        im = random_upload(digit, rng, 0.45, 1.0)
        g = np.asarray(im.convert("L"), np.float64)
        if min(g.shape) < 48 or im.mode != "L":
            continue
        corners = [np.median(c) for c in (g[:6, :6], g[:6, -6:], g[-6:, :6], g[-6:, -6:])]
        if g.min() < min(corners) - 20 and max(corners) - min(corners) > 5:
            papers += 1  # ink darker than the paper, the paper's light uneven
    assert papers >= 60
