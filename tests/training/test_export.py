"""ONNX export: parity for every registered network, and the repository files it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from modelrepo.card import CardDraft, ModelCard
from modelrepo.repository import check_model_dir
from training.export import export_to_repository, onnx_export, parity_check
from training.nets import build, get_arch, list_archs

SMALL = [a for a in list_archs() if "small" in get_arch(a).presets]


@pytest.mark.parametrize("arch", SMALL)
def test_onnx_runtime_parity_small_preset(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build(arch, preset="small", num_classes=5, in_channels=3).eval()
    path = tmp_path / "model.onnx"
    onnx_export(model, torch.randn(1, 3, 32, 32), path)
    rng = np.random.default_rng(1)
    # batch 4 differs from the export's batch 1: the batch axis must be dynamic
    inputs = [
        rng.standard_normal((4, 3, 32, 32)).astype(np.float32),
        rng.uniform(-2, 2, (1, 3, 32, 32)).astype(np.float32),
    ]
    parity_check(model, path, inputs)  # asserts rtol 1e-3 / atol 1e-5 on every output
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["logits"]


def test_parity_check_catches_a_different_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build("lenet5", num_classes=3, in_channels=1).eval()
    onnx_export(model, torch.randn(1, 1, 32, 32), tmp_path / "m.onnx")
    with torch.no_grad():
        model.classifier[-1].bias.add_(0.5)  # the PyTorch model now differs from the file
    with pytest.raises(AssertionError, match="parity"):
        parity_check(model, tmp_path / "m.onnx", [np.zeros((2, 1, 32, 32), np.float32)])


def _card_fields(name: str, source: str = "lenet5_digits") -> CardDraft:
    """A committed card's fields (``source``) under another name, for a fresh export."""
    committed = ModelCard.load(Path(__file__).resolve().parents[2] / "models" / source / "card.json")
    fields = committed.model_dump(exclude={"export", "versions", "created_at", "git_commit", "schema_version"})
    return CardDraft(**(fields | {"name": name}))


def test_export_to_repository_writes_triton_layout_and_refuses_overwrite(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build("lenet5", num_classes=10, in_channels=1)
    real = np.random.default_rng(0).standard_normal((4, 1, 32, 32)).astype(np.float32)
    card = export_to_repository(model, _card_fields("tiny"), tmp_path, real)
    mdir = tmp_path / "tiny"
    assert card.latest_version == 1
    assert (mdir / "1" / "model.onnx").is_file()
    assert (mdir / "labels.txt").read_text().split() == [str(i) for i in range(10)]
    pbtxt = (mdir / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in pbtxt and "dims: [ 1, 32, 32 ]" in pbtxt and "dims: [ 10 ]" in pbtxt
    assert 'name: "tiny"' in pbtxt
    entry = check_model_dir(mdir)
    assert entry.ok, entry.problems
    with pytest.raises(FileExistsError):
        export_to_repository(model, _card_fields("tiny"), tmp_path, real, version=1)
    # an explicit new version is added beside the first, and the card lists both
    card2 = export_to_repository(model, _card_fields("tiny"), tmp_path, real)
    assert sorted(card2.versions) == [1, 2]
    assert json.loads((mdir / "card.json").read_text())["versions"].keys() == {"1", "2"}
    assert check_model_dir(mdir).ok


def test_fp16_weights_halve_a_committed_file_and_keep_its_outputs(tmp_path: Path) -> None:
    import onnxruntime as ort

    from training.fp16_weights import FP16_ATOL, convert_committed, is_fp16_stored

    torch.manual_seed(0)
    model = build("lenet5", num_classes=10, in_channels=1)
    real = np.random.default_rng(0).standard_normal((4, 1, 32, 32)).astype(np.float32)
    export_to_repository(model, _card_fields("tiny"), tmp_path, real)
    path = tmp_path / "tiny" / "1" / "model.onnx"
    before, want = path.stat().st_size, ort.InferenceSession(str(path)).run(None, {"input": real})[0]
    assert "bytes" in convert_committed(tmp_path / "tiny")
    assert is_fp16_stored(path) and path.stat().st_size < 0.6 * before
    graph = onnx.load(str(path)).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # inputs and outputs stay float32
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    got = ort.InferenceSession(str(path)).run(None, {"input": real})[0]
    assert 0 < np.abs(got - want).max() < FP16_ATOL * max(1.0, np.abs(want).max())  # rounded, not changed
    entry = check_model_dir(tmp_path / "tiny")  # the card's sha256 and size follow the new file
    assert entry.ok, entry.problems
    assert entry.card.export.weights == "float16" and entry.card.export.fp16_max_abs_diff > 0
    assert entry.card.versions[1].bytes == path.stat().st_size
    assert "already" in convert_committed(tmp_path / "tiny")


def test_fp16_weights_convert_a_denoiser_fed_its_noise_level_channel(tmp_path: Path, monkeypatch) -> None:
    """The check's inputs follow the card: a denoiser gets its noise-level channel (the committed float32 denoisers
    were refused: 1 channel fed where the graph takes 2); a failed check leaves the committed file as it was."""
    import training.fp16_weights as fp16
    from modelrepo.preprocess import with_noise_level
    from training.nets.autoencoder import WithNoiseChannel
    from training.nets.drunet import ResUNetDenoiser

    fields = _card_fields("unet_denoise_gray", "unet_denoise_gray")
    torch.manual_seed(0)
    net = WithNoiseChannel(ResUNetDenoiser(1, **fields.architecture.kwargs), 1)
    image = np.random.default_rng(0).random((2, 1, 64, 64), np.float32)
    real = with_noise_level(image, 25.0)
    for folder in ("a", "b"):  # float32 files of the committed denoiser's graph
        export_to_repository(net, fields, tmp_path / folder, real, dynamic_spatial=True)
    a, b = tmp_path / "a" / fields.name, tmp_path / "b" / fields.name
    path = a / "1" / "model.onnx"
    before = path.stat().st_size
    (x,) = fp16.sample_inputs(check_model_dir(a).card)
    assert x.shape == (2, 2, 64, 64) and np.unique(x[:, 1]).size == 2  # the image and a level per image
    assert "bytes" in fp16.convert_committed(a)
    assert fp16.is_fp16_stored(path) and path.stat().st_size < 0.6 * before
    assert check_model_dir(a).card.export.fp16_max_abs_diff < fp16.FP16_ATOL

    monkeypatch.setattr(fp16, "sample_inputs", lambda card: [np.zeros((1, 1, 64, 64), np.float32)])
    original = (b / "1" / "model.onnx").read_bytes()
    with pytest.raises(Exception, match="dimensions"):
        fp16.convert_committed(b)
    assert (b / "1" / "model.onnx").read_bytes() == original
    assert sorted(p.name for p in (b / "1").iterdir()) == ["model.onnx"]
