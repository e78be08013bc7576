"""The merge tally: a pair held by one predicted object is merged, a pair parted is not; contrast and size bins."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from training.data.cells import CellImage, classes_from_instances
from training.seg_merges import merges, pair_rows, tally, touching_pairs


def _cells() -> CellImage:
    inst = np.zeros((40, 80), np.int32)
    inst[5:25, 5:25], inst[5:25, 25:45] = 1, 2  # touching, 20 px squares
    inst[5:25, 60:70] = 3  # alone
    image = np.full(inst.shape, 10.0)
    image[inst == 1], image[inst == 2], image[inst == 3] = 110.0, 130.0, 50.0  # 100 and 120 above background
    return CellImage(image.astype(np.uint16), inst, classes_from_instances(inst))


def test_touching_pairs_are_the_cells_sharing_an_edge() -> None:
    assert touching_pairs(_cells().instances) == {(1, 2)}


def test_a_merged_pair_counts_as_merged_and_a_parted_one_does_not() -> None:
    cell = _cells()
    merged = np.where(cell.instances == 2, 1, cell.instances)  # one object over both
    (row,) = pair_rows(merged, cell)
    assert row[0] and abs(row[1] - 1.2) < 1e-9 and abs(row[2] - 20 / np.sqrt(np.pi)) < 1e-9
    (row,) = pair_rows(cell.instances, cell)  # the truth itself: parted
    assert not row[0]
    (row,) = pair_rows(np.zeros_like(cell.instances), cell)  # nothing found: missed, not merged
    assert not row[0]


def test_tally_bins_by_contrast_and_size() -> None:
    rows = [(True, 1.1, 5.0), (False, 1.2, 6.0), (False, 4.0, 10.0), (False, 5.0, 30.0)]
    t = tally(rows)
    assert t["all"] == [{"pairs": 4, "merged": 0.25}]
    first = t["contrast"][0]
    assert (first["from"], first["to"], first["pairs"], first["merged"]) == (1.0, 1.25, 2, 0.5)
    assert [b["pairs"] for b in t["contrast"]] == [2, 2] and [b["pairs"] for b in t["radius_px"]] == [2, 1, 1]


def test_a_segmenter_whose_training_data_is_not_here_is_refused_by_name(tmp_path) -> None:
    model = tmp_path / "unet_cells"
    shutil.copytree(Path(__file__).resolve().parents[2] / "models" / "unet_cells", model)
    card = json.loads((model / "card.json").read_text())
    card["hyperparameters"] |= {"data": "folder", "data_dir": str(tmp_path / "gone")}
    card["training"]["source"] = f"folder:{tmp_path / 'gone'}"
    (model / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"unet_cells: data source folder:.*gone is not available here"):
        merges(model)
