"""A tiny real training run: loss falls, the checkpoint rebuilds the model, export + CLI work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modelrepo.repository import check_model_dir
from training.__main__ import main
from training.eval_repo import evaluate_repository
from training.loop import Run
from training.nets import build
from training.tasks.classify import ClassifyConfig, train_classifier
from training.weights import load_weights


def test_tiny_training_lowers_loss_checkpoints_and_exports(bars_folder: Path, tmp_path: Path) -> None:
    cfg = ClassifyConfig(
        arch="resnet_seed",
        data="folder",
        data_dir=str(bars_folder),
        epochs=6,
        batch_size=16,
        lr=3e-3,
        out=str(tmp_path / "runs"),
        patience=100,
    )
    result = train_classifier(cfg, run=Run(export_to=tmp_path / "models", progress=False))
    hist = json.loads((tmp_path / "runs" / "resnet_seed_folder" / "history.json").read_text())["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert result["test_accuracy"] > 0.5  # three classes: chance is 1/3
    assert (tmp_path / "runs" / "resnet_seed_folder" / "confusion_matrix.png").stat().st_size > 1000

    ckpt = torch.load(tmp_path / "runs" / "resnet_seed_folder" / "checkpoint.pt", weights_only=False)
    assert ckpt["config"]["arch"] == "resnet_seed"
    model = build(**ckpt["model_args"])
    model.load_state_dict(ckpt["state_dict"])  # the checkpoint alone rebuilds the network

    entry = check_model_dir(tmp_path / "models" / "resnet_seed_folder")
    assert entry.ok, entry.problems
    assert entry.card.input.color_mode == "RGB" and entry.card.labels == ["blob", "horizontal", "vertical"]
    # make eval's code path re-measures the exported model on the same folder data
    (res,) = evaluate_repository(tmp_path / "models")
    assert res.ok, res.message
    assert abs(res.measured - entry.card.metrics["accuracy"]) < 1e-6


def test_cli_classify_and_eval(bars_folder: Path, tmp_path: Path, capsys) -> None:
    rc = main(
        [
            "classify",
            "--arch",
            "lenet5",
            "--data",
            "folder",
            "--data-dir",
            str(bars_folder),
            "--epochs",
            "2",
            "--out",
            str(tmp_path / "runs"),
            "--export-to",
            str(tmp_path / "models"),
            "--name",
            "tiny",
        ]
    )
    assert rc == 0
    assert main(["eval", "--models", str(tmp_path / "models")]) == 0
    assert "OK" in capsys.readouterr().out


def test_load_weights_keeps_body_and_skips_a_resized_head(tmp_path: Path) -> None:
    src = build("resnet18", preset="small", num_classes=10)
    torch.save(src.state_dict(), tmp_path / "w.pth")
    dst = build("resnet18", preset="small", num_classes=4)
    skipped = load_weights(dst, tmp_path / "w.pth")
    assert skipped == ["fc.weight", "fc.bias"]
    torch.testing.assert_close(dst.conv1.weight, src.conv1.weight)


def test_every_task_flag_is_described_by_its_config_comment(capsys) -> None:
    from training.__main__ import field_help
    from training.tasks.nowcast import NowcastConfig

    helps = field_help(NowcastConfig)
    assert helps["compare"].startswith("comma-separated committed nowcasters")
    assert "rollout_start applications" in helps["rollout_start"]  # the comment lines above the field
    assert "n_val" not in helps  # no comment, no help
    with pytest.raises(SystemExit) as done:
        main(["nowcast", "--help"])
    assert done.value.code == 0 and "comma-separated committed nowcasters" in capsys.readouterr().out
