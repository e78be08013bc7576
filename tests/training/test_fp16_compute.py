"""Float16-arithmetic copies of committed models (``python -m training fp16-compute``), for GPUs."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from modelrepo.repository import check_model_dir
from tests.conftest import MODELS
from training.__main__ import main as training_main
from training.eval_repo import evaluate_entry
from training.fp16_compute import convert_to_fp16_compute


@pytest.fixture(scope="module")
def fp16_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("fp16repo")
    shutil.copytree(MODELS / "resnet20_digits", root / "resnet20_digits")
    assert training_main(["fp16-compute", str(root / "resnet20_digits"), "--out", str(root)]) == 0
    return root


def test_the_copy_computes_in_float16_behind_float32_inputs_and_outputs(fp16_repo) -> None:
    entry = check_model_dir(fp16_repo / "resnet20_digits_fp16")
    assert entry.ok, entry.problems
    card = entry.card
    assert card.name == "resnet20_digits_fp16" and card.export.compute == "float16"
    assert 0 < card.export.fp16_max_abs_diff < 0.05
    graph = onnx.load(str(entry.version_path())).graph
    conv_weights = {n.input[1] for n in graph.node if n.op_type == "Conv"}
    stored = {i.name: i.data_type for i in graph.initializer}
    assert conv_weights and all(stored[w] == onnx.TensorProto.FLOAT16 for w in conv_weights if w in stored)
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_make_eval_re_measures_the_copy_from_its_own_file(fp16_repo) -> None:
    entry = check_model_dir(fp16_repo / "resnet20_digits_fp16")
    result = evaluate_entry(entry)
    assert result.ok, result.message
    assert result.measured == pytest.approx(entry.card.metrics["accuracy"], abs=0.01)


def test_the_service_serves_the_copy_with_the_originals_answers(fp16_repo) -> None:
    from tests.service.conftest import png_bytes, ready_client
    from training.data import load_digits_splits

    images = load_digits_splits(seed=0).test.images[:8]
    files = [("files", (f"{i}.png", png_bytes(im, 64), "image/png")) for i, im in enumerate(images)]
    with ready_client(models_dir=fp16_repo) as c:
        a = c.post("/classify?model=resnet20_digits&top_k=1", files=files).json()["results"]
        b = c.post("/classify?model=resnet20_digits_fp16&top_k=1", files=files).json()["results"]
    for x, y in zip(a, b):
        assert x["predictions"][0]["label"] == y["predictions"][0]["label"]
        assert np.isclose(x["predictions"][0]["score"], y["predictions"][0]["score"], atol=0.02)


def test_refuses_float16_stored_weights_and_an_existing_copy(fp16_repo, tmp_path) -> None:
    with pytest.raises(ValueError, match="float16 already"):
        convert_to_fp16_compute(MODELS / "unet_cells", tmp_path)
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_to_fp16_compute(fp16_repo / "resnet20_digits", fp16_repo)


def test_a_copy_that_fails_its_check_is_refused_and_leaves_nothing(tmp_path, monkeypatch) -> None:
    """As the Lagrangian nowcaster's float32 graph does (the converter leaves its Casts inconsistent, and
    ONNX Runtime refuses the file): here the check is made to fail the same way."""
    import training.fp16_compute as fc

    def refused(*_):
        raise RuntimeError("Type Error: Type (tensor(float16)) of output arg does not match expected type")

    monkeypatch.setattr(fc, "compare", refused)
    with pytest.raises(ValueError, match="does not convert to float16 arithmetic"):
        fc.convert_to_fp16_compute(MODELS / "resnet20_digits", tmp_path)
    assert not (tmp_path / "resnet20_digits_fp16").exists()
