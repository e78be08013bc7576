"""Half-size model files: weights stored as float16, computed in float32.

Each float32 initializer of at least ``MIN_ELEMENTS`` values is replaced by its float16 copy and a
``Cast`` back to float32 in front of the graph. Inputs, outputs and arithmetic stay float32; ONNX
Runtime folds the casts into float32 constants when it builds the session, so speed is unchanged.
What changes is the weights' rounding (about 3 significant digits): the file is checked against
the float32 graph it came from, and ``make eval`` re-measures every card figure from the stored file.

``python -m training fp16-weights models/<name>`` converts a committed model in place (its card's
``versions`` and ``export`` record the new file); a training command does it to what it exported
with ``--fp16-weights``, and ``make models`` to the default models in ``training.defaults.FP16_WEIGHTS``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

MIN_ELEMENTS = 256  # small tensors (biases, shapes) stay float32: nothing to gain
FP16_RTOL, FP16_ATOL = 2e-2, 2e-3  # for outputs of order one (the atol scales with larger outputs)


def to_fp16_weights(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` with large float32 initializers stored as float16; also how many were."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    casts, keep, n = [], [], 0
    for init in g.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype != np.float32 or a.size < MIN_ELEMENTS:
            keep.append(init)
            continue
        if np.abs(a).max() >= np.finfo(np.float16).max:
            raise ValueError(f"initializer {init.name} holds values beyond float16's range")
        keep.append(numpy_helper.from_array(a.astype(np.float16), init.name + "__fp16"))
        casts.append(helper.make_node("Cast", [init.name + "__fp16"], [init.name], to=onnx.TensorProto.FLOAT))
        n += 1
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(out, full_check=True)
    return out, n


def is_fp16_stored(path: Path) -> bool:
    return any(i.data_type == onnx.TensorProto.FLOAT16 for i in onnx.load(str(path)).graph.initializer)


def compare(reference: Path, candidate: Path, inputs: list[np.ndarray]) -> float:
    """Max |difference| between two ONNX files' outputs on ``inputs``; asserts the fp16 tolerance."""
    ref = ort.InferenceSession(str(reference), providers=["CPUExecutionProvider"])
    cand = ort.InferenceSession(str(candidate), providers=["CPUExecutionProvider"])
    name, worst = ref.get_inputs()[0].name, 0.0
    for x in inputs:
        want, got = ref.run(None, {name: x})[0], cand.run(None, {name: x})[0]
        atol = FP16_ATOL * max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=FP16_RTOL, atol=atol, err_msg=f"fp16 weights, input {x.shape}")
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def convert_file(src: Path, dst: Path, inputs: list[np.ndarray]) -> float:
    """Write ``src`` with float16 weights to ``dst``; return the max |difference| on ``inputs``."""
    model, n = to_fp16_weights(onnx.load(str(src)))
    if n == 0:
        raise ValueError(f"{src} has no float32 weights to store as float16")
    onnx.save(model, str(dst))
    return compare(src, dst, inputs)


def sample_inputs(card, shape_hint: tuple[int, int] = (64, 64)) -> list[np.ndarray]:
    """Inputs for the check, from the card's input spec: a uniform batch in the network's range (and a denoiser's
    noise-level channel: a constant level per image)."""
    rng = np.random.default_rng(0)
    spec = card.input
    h = spec.height if isinstance(spec.height, int) else shape_hint[0]
    w = spec.width if isinstance(spec.width, int) else shape_hint[1]
    x = rng.uniform(0, 1, (2, spec.channels, h, w)).astype(np.float32)
    mean = np.asarray(spec.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(spec.std, np.float32).reshape(1, -1, 1, 1)
    x = (x - mean) / std
    if spec.noise_level_channel:
        from modelrepo.preprocess import with_noise_level

        x = np.concatenate([with_noise_level(x[:1], 10.0), with_noise_level(x[1:], 50.0)])
    return [np.ascontiguousarray(x)]


def convert_committed(model_dir: Path) -> str:
    """Store a committed model's newest version with float16 weights, in place; update its card."""
    from modelrepo.card import VersionFile
    from modelrepo.repository import CARD_FILE, check_model_dir, sha256_file

    entry = check_model_dir(model_dir)
    if not entry.ok or entry.card is None:
        raise ValueError(f"{model_dir}: {entry.problems}")
    card, path = entry.card, entry.version_path()
    if is_fp16_stored(path):
        return f"{card.name}: already float16 weights"
    before = path.stat().st_size
    tmp = path.with_suffix(".fp16.onnx")
    try:
        diff = convert_file(path, tmp, sample_inputs(card))
    except Exception:
        tmp.unlink(missing_ok=True)  # the committed file stays as it was
        raise
    tmp.replace(path)
    version = next(v for v, f in card.versions.items() if model_dir / f.path == path)
    versions = dict(card.versions) | {
        version: VersionFile(path=card.versions[version].path, sha256=sha256_file(path), bytes=path.stat().st_size)
    }
    export = card.export.model_copy(update={"weights": "float16", "fp16_max_abs_diff": diff})
    card.model_copy(update={"versions": versions, "export": export}).dump(model_dir / CARD_FILE)
    return f"{card.name}: {before:,} -> {path.stat().st_size:,} bytes, max |output change| {diff:.2e}"
