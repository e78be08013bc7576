"""The committed model repository: five digits classifiers, one per family, verified and re-measured."""

from __future__ import annotations

import pytest

from modelrepo.repository import scan_repository
from tests.conftest import MODELS
from training.eval_repo import evaluate_entry

ENTRIES = {e.name: e for e in scan_repository(MODELS)}
FAMILIES = {"lenet", "alexnet", "vgg", "googlenet", "resnet"}


def test_one_default_classifier_per_family() -> None:
    families = {e.card.architecture.family for e in ENTRIES.values() if e.card and e.card.task == "classification"}
    assert FAMILIES <= families


def test_repository_fits_the_size_budget() -> None:
    total = sum(f.stat().st_size for f in MODELS.rglob("*") if f.is_file())
    assert total <= 30_000_000  # 30 MB, the budget


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_committed_model_matches_its_card(name: str) -> None:
    entry = ENTRIES[name]
    assert entry.ok, entry.problems
    assert (entry.path / "config.pbtxt").read_text().startswith(f'name: "{name}"')
    result = evaluate_entry(entry)
    assert result.ok, result.message
    if entry.card.task == "classification" and entry.card.training.source == "sklearn.datasets.load_digits":
        assert result.measured >= 0.98
    if entry.card.task == "denoising":  # better than the noisy input by a wide margin (targets: see the card)
        noisy = entry.card.headline_metric.removesuffix("_model") + "_noisy"  # camera (gray), astronaut (colour)
        assert result.measured >= entry.card.metrics[noisy] + 5
    if entry.card.task == "nowcasting":  # re-measured from the ONNX file; beats persistence at 30 and 60 min
        v = entry.card.verification["methods"]
        leads = entry.card.verification["lead_minutes"]
        for minutes in (30, 60):
            assert entry.card.metrics[f"mae_dbz_{minutes}min"] < v["persistence"]["mae_dbz"][leads.index(minutes)]
    if entry.card.task == "segmentation":  # re-measured from the ONNX file by evaluate_entry above
        m = entry.card.metrics
        for prefix in ("", "cross_", "cross_x2_", "first_"):  # every held-out set: well above Otsu + watershed
            assert m[f"{prefix}object_f1"] >= m[f"{prefix}baseline_object_f1"] + 0.10, prefix
        assert m["first_object_f1"] >= 0.985 - 0.02  # the previous model's own set: not worse
        assert m["cross_x2_object_f1"] >= m["cross_object_f1"] - 0.05  # magnified: the scale search finds them
        # not reached yet (README): cross_object_f1 >= 0.90 with precision and recall >= 0.85


def test_a_segmentation_model_is_committed() -> None:
    assert any(e.card and e.card.task == "segmentation" for e in ENTRIES.values())


def test_a_nowcasting_model_is_committed() -> None:
    assert any(e.card and e.card.task == "nowcasting" for e in ENTRIES.values())
