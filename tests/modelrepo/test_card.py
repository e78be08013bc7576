"""Card schema round trip, validation, and sha256 verification of version files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from modelrepo.card import ModelCard
from modelrepo.repository import check_model_dir, scan_repository
from tests.conftest import MODELS

LENET = MODELS / "lenet5_digits"


def test_card_round_trip(tmp_path: Path) -> None:
    card = ModelCard.load(LENET / "card.json")
    card.dump(tmp_path / "card.json")
    again = ModelCard.load(tmp_path / "card.json")
    assert again == card
    assert again.labels == [str(i) for i in range(10)]


def _raw() -> dict:
    return json.loads((LENET / "card.json").read_text())


def test_card_rejects_labels_that_do_not_match_the_output() -> None:
    raw = _raw()
    raw["labels"] = raw["labels"][:9]
    with pytest.raises(ValidationError, match="labels"):
        ModelCard.model_validate(raw)


def test_card_rejects_non_positive_std_and_unknown_fields() -> None:
    raw = _raw()
    raw["input"]["std"] = [0.0]
    with pytest.raises(ValidationError, match="std"):
        ModelCard.model_validate(raw)
    raw = _raw()
    raw["surprise"] = 1
    with pytest.raises(ValidationError):
        ModelCard.model_validate(raw)


def test_card_rejects_other_schema_versions() -> None:
    raw = _raw()
    raw["schema_version"] = 99
    with pytest.raises(ValidationError, match="schema_version"):
        ModelCard.model_validate(raw)


def test_sha256_mismatch_makes_only_that_model_unavailable(tmp_path: Path) -> None:
    for name in ("lenet5_digits", "resnet20_digits"):
        shutil.copytree(MODELS / name, tmp_path / name)
    onnx_file = tmp_path / "lenet5_digits" / "1" / "model.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte
    onnx_file.write_bytes(bytes(data))
    entries = {e.name: e for e in scan_repository(tmp_path)}
    assert not entries["lenet5_digits"].ok
    assert "sha256" in entries["lenet5_digits"].problems[0]
    assert entries["resnet20_digits"].ok


def test_missing_and_broken_cards_are_reported(tmp_path: Path) -> None:
    (tmp_path / "nocard").mkdir()
    (tmp_path / "nocard" / "config.pbtxt").write_text('name: "nocard"\n')
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "card.json").write_text("{not json")
    entries = {e.name: e for e in scan_repository(tmp_path)}
    assert "card.json is missing" in entries["nocard"].problems
    assert "invalid" in entries["broken"].problems[0]
    assert check_model_dir(LENET).ok
