"""Where the classifiers' digits come from: the pen-motion handwriting that extends training, and the MNIST
sample that only the robustness suite reads."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from training.data.hand_digits import STYLES, hand_digits
from training.data.mnist import mnist_sample
from training.tasks.classify import ClassifyConfig, _extra_train

ROOT = Path(__file__).resolve().parents[2]


def test_hand_digits_are_deterministic_light_ink_on_black_in_class_order() -> None:
    images, labels, info = hand_digits(4, seed=3)
    again, _, _ = hand_digits(4, seed=3)
    other, _, _ = hand_digits(4, seed=4)
    assert labels.tolist() == [d for d in range(10) for _ in range(4)]
    assert all(np.array_equal(a, b) for a, b in zip(images, again))
    assert not all(np.array_equal(a, b) for a, b in zip(images, other))
    for im in images:
        assert im.shape == (64, 64) and im.dtype == np.uint8
        border = np.concatenate([im[:2].ravel(), im[-2:].ravel(), im[:, :2].ravel(), im[:, -2:].ravel()])
        assert border.max() < 40 and im.max() > 200  # a margin of black around white ink
        assert 0.01 < (im > 128).mean() < 0.5  # strokes, not a blob or a speck
    assert info["styles_per_digit"] == {str(d): len(STYLES[d]) for d in range(10)}
    assert all(len(STYLES[d]) >= 2 for d in (0, 2, 4, 6, 7, 9))  # the variants people write


def test_extra_training_sources_are_named_and_recorded() -> None:
    from training.data import load_digits_splits
    from training.tasks.classify import input_spec

    splits = load_digits_splits(seed=0)
    spec = input_spec(splits, 32, framed=True)
    images, labels, info = _extra_train(ClassifyConfig(extra_train="fonts+hand", hand_per_class=3), splits, spec)
    assert set(info) == {"fonts", "hand"} and info["hand"]["count"] == 30
    assert len(images) == len(labels) == info["fonts"]["count"] + 30
    assert _extra_train(ClassifyConfig(extra_train=""), splits, spec) is None
    with pytest.raises(ValueError, match="unknown source"):
        _extra_train(ClassifyConfig(extra_train="fonts+mnist"), splits, spec)


def test_mnist_sample_is_500_real_digits_per_class() -> None:
    images, labels = mnist_sample()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert images[:, :2].mean() < 5 and images.mean() < 50  # white ink on black, centred in the 28 px box


def test_no_training_code_reads_mnist() -> None:
    """MNIST is a check of what training never saw: only the robustness suite and its loader name it."""
    readers = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "training").rglob("*.py")
        if re.search(r"mnist_sample|data\.mnist\b|import mnist", path.read_text())
    }
    assert readers == {"training/robustness.py", "training/data/mnist.py"}
