"""The paired comparison of two segmenters: counts per image agree with the pooled object F1, the bootstrap's
interval is about the difference, on the same images for both."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelrepo.repository import check_model_dir
from training.data.cells_alt import make_alt_cell_dataset
from training.seg_compare import counts, paired
from training.seg_metrics import f1_from_counts as f1
from training.seg_metrics import object_f1
from training.tasks.segment_eval import segment_all

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_per_image_counts_of_the_committed_model_pool_to_its_object_f1() -> None:
    from training.eval_repo import segmenter

    entry = check_model_dir(MODELS / "unet_cells")
    _, logits_of = segmenter(entry)
    data = make_alt_cell_dataset(3, seed=11)
    c = counts(logits_of, data, entry.card.input, entry.card.output)
    pooled = object_f1(segment_all(logits_of, [d.image for d in data], entry.card.input, entry.card.output),
                       [d.instances for d in data])  # fmt: skip
    assert c.shape == (3, 3) and c[:, 0].sum() == pooled["tp"] and c[:, 2].sum() == pooled["fn"]
    assert abs(float(f1(c.sum(0))) - pooled["f1"]) < 1e-12
    same = paired(c, c, n_boot=200)
    assert same["diff"] == 0 and same["lo"] == 0 and same["hi"] == 0


def test_bootstrap_interval_brackets_a_real_difference_and_straddles_none() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(20, 60, 40)
    a = np.stack([truth - 10, rng.integers(0, 5, 40), np.full(40, 10)], 1)  # 10 missed per image
    better = a + np.array([5, 0, -5])  # 5 more found per image
    r = paired(a, better)
    assert r["diff"] > 0 and 0 < r["lo"] <= r["diff"] <= r["hi"]
    noisy = a.copy()
    noisy[::2] += np.array([3, 0, -3])
    noisy[1::2] += np.array([-3, 0, 3])  # as much better on half the images as worse on the other half
    r = paired(a, noisy)
    assert r["lo"] < 0 < r["hi"]
