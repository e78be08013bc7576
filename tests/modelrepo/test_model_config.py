"""config.pbtxt read by protobuf's text-format parser: every committed config agrees with its ONNX
file (names, dtypes, dims); Triton's own syntax parses; a broken config is a model problem."""

from __future__ import annotations

import onnx
import pytest

from modelrepo.errors import InputError
from modelrepo.model_config import parse_model_config
from modelrepo.repository import check_model_dir, scan_repository
from tests.conftest import MODELS

ONNX_TYPES = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16"}


def _dims(value_info) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("entry", scan_repository(MODELS), ids=lambda e: e.name)
def test_every_committed_config_matches_its_onnx_file(entry) -> None:
    assert entry.ok and entry.config is not None, entry.problems
    cfg = entry.config
    assert cfg.name == entry.name and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size >= 1
    graph = onnx.load(str(entry.version_path()), load_external_data=False).graph
    for declared, actual in ((cfg.inputs, graph.input), (cfg.outputs, graph.output)):
        assert [t.name for t in declared] == [v.name for v in actual]
        for t, v in zip(declared, actual):
            assert t.data_type == ONNX_TYPES[v.type.tensor_type.elem_type]
            onnx_dims = _dims(v)
            assert onnx_dims[0] == -1  # the batch axis is dynamic, as max_batch_size > 0 says
            assert t.dims == onnx_dims[1:], (t.name, t.dims, onnx_dims)  # -1 where the file's axis is dynamic


def test_triton_syntax_with_fields_beyond_ours_parses() -> None:
    cfg = parse_model_config(
        """
        name: "resnet" platform: "onnxruntime_onnx" max_batch_size: 16
        input [ { name: "input" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [ 3, 224, 224 ] } ]
        output [ { name: "logits" data_type: TYPE_FP32 dims: [ 1000 ] label_filename: "labels.txt" } ]
        version_policy: { specific { versions: [ 1, 3 ] } }
        instance_group [ { count: 2 kind: KIND_GPU gpus: [ 0 ] } ]
        dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 500 }
        optimization { execution_accelerators { gpu_execution_accelerator : [ { name : "tensorrt" } ] } }
        """
    )
    assert cfg.max_batch_size == 16 and cfg.inputs[0].dims == [3, 224, 224] and cfg.outputs[0].dims == [1000]
    assert cfg.versions == [1, 3] and cfg.instance_kind == "KIND_GPU"
    assert cfg.max_queue_delay_ms == 0.5 and cfg.preferred_batch_sizes == [4, 8]
    assert parse_model_config('name: "m" version_policy: { all { } }').versions == "all"
    assert parse_model_config('name: "m" version_policy: { latest { num_versions: 2 } }').versions == 2


def test_a_broken_config_makes_the_model_unavailable(tmp_path) -> None:
    import shutil

    shutil.copytree(MODELS / "lenet5_digits", tmp_path / "lenet5_digits")
    (tmp_path / "lenet5_digits" / "config.pbtxt").write_text('name: "lenet5_digits" max_batch_size: [oops')
    entry = check_model_dir(tmp_path / "lenet5_digits")
    assert not entry.ok and any("config.pbtxt" in p for p in entry.problems)
    with pytest.raises(InputError):
        parse_model_config("max_batch_size: 'eight'")
