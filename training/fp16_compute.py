"""A half-precision copy of a committed model, for GPUs: arithmetic in float16, inputs and outputs float32.

``python -m training fp16-compute models/resnet20_digits --out models`` writes ``resnet20_digits_fp16``
beside it: the graph converted by onnxconverter-common (``keep_io_types``: callers still send and get
float32; operators without a float16 kernel stay float32 behind casts), checked against the float32
file at the float16 tolerance, with the card copied (name, ``export.compute``, the largest output change).
The service serves it as a model of its own (``/classify?model=resnet20_digits_fp16``), and ``make eval``
re-measures its card's figures from the float16 file like any other.

Tensor cores make it the fast path on a GPU; on a CPU, ONNX Runtime has few float16 kernels and runs
it slower than float32 - it is not a CPU model. Models whose weights are already stored as float16
(``training.fp16_weights``) are refused: convert the float32 export instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx

from training.fp16_weights import compare, is_fp16_stored, sample_inputs

SUFFIX = "_fp16"


def to_fp16_compute(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxconverter_common import float16

    return float16.convert_float_to_float16(model, keep_io_types=True)


def convert_to_fp16_compute(model_dir: Path, out_root: Path, overwrite: bool = False) -> str:
    """Write ``out_root/<name>_fp16`` (version 1) from the newest version of ``model_dir``."""
    from modelrepo.card import VersionFile
    from modelrepo.repository import check_model_dir, sha256_file, write_repository_files

    entry = check_model_dir(model_dir)
    if not entry.ok or entry.card is None:
        raise ValueError(f"{model_dir}: {entry.problems}")
    card, src = entry.card, entry.version_path()
    if is_fp16_stored(src):
        raise ValueError(f"{card.name} stores its weights as float16 already; convert a float32 export of it")
    name = card.name + SUFFIX
    dst_dir = out_root / name
    if dst_dir.exists():
        if not overwrite:
            raise FileExistsError(f"{dst_dir} exists (--overwrite replaces it)")
        shutil.rmtree(dst_dir)
    dst = dst_dir / "1" / "model.onnx"
    dst.parent.mkdir(parents=True)
    onnx.save(to_fp16_compute(onnx.load(str(src))), str(dst))
    try:
        diff = compare(src, dst, sample_inputs(card))
    except Exception as exc:  # e.g. the Lagrangian nowcaster: the converter leaves its Casts inconsistent
        shutil.rmtree(dst_dir)
        raise ValueError(f"{card.name} does not convert to float16 arithmetic: {str(exc)[:300]}") from exc
    export = card.export.model_copy(update={"compute": "float16", "fp16_max_abs_diff": diff})
    fp16 = card.model_copy(
        update={
            "name": name,
            "description": f"{card.description} Float16 arithmetic (float32 in and out) converted from "
            f"{card.name} for GPUs.",
            "export": export,
            "versions": {1: VersionFile(path="1/model.onnx", sha256=sha256_file(dst), bytes=dst.stat().st_size)},
        }
    )
    config = entry.config
    write_repository_files(dst_dir, fp16, config.max_batch_size if config and config.max_batch_size else 8)
    return f"{name}: float16 arithmetic, max |output change| {diff:.2e}, {dst.stat().st_size:,} bytes"
