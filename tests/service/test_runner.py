"""How batches reach ONNX Runtime: IO binding and batch-size buckets, on the CPU execution provider
(the GPU path is the same code with device buffers on CUDA; CI has no GPU)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from service.registry import provider_options
from service.runner import MAX_BUFFERS, SessionRunner, bucket_sizes
from service.settings import Settings
from tests.conftest import MODELS
from tests.service.conftest import ready_client


def session(name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(MODELS / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])


def test_bucket_sizes() -> None:
    assert bucket_sizes(32, "pow2") == [1, 2, 4, 8, 16, 32]
    assert bucket_sizes(24, "pow2") == [1, 2, 4, 8, 16, 24]  # the limit itself is the last bucket
    assert bucket_sizes(1, "pow2") == [1]
    assert bucket_sizes(32, "none") == []
    with pytest.raises(ValueError, match="bucket"):
        bucket_sizes(8, "fib")


@pytest.mark.parametrize("buckets", [None, [1, 2, 4, 8]])
def test_io_binding_gives_session_run_outputs_for_every_shape_and_reused_buffers(buckets) -> None:
    sess = session("unet_cells")  # dynamic height and width: one device buffer per input shape
    name = sess.get_inputs()[0].name
    runner = SessionRunner(sess, name, io_binding=True, buckets=buckets)
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 64, 64), (3, 1, 32, 48), (1, 1, 64, 64), (3, 1, 32, 48)]:  # back to a kept buffer
        x = rng.random(shape, dtype=np.float32)
        np.testing.assert_allclose(runner(x), sess.run(None, {name: x})[0], rtol=1e-5, atol=1e-5)
    held = {s[0] for s in runner._buffers}
    assert held == ({1, 4} if buckets else {1, 3})  # 3 rows ran as the bucket of 4


def test_io_binding_keeps_at_most_max_buffers() -> None:
    sess = session("unet_cells")
    runner = SessionRunner(sess, sess.get_inputs()[0].name, io_binding=True)
    for k in range(MAX_BUFFERS + 3):
        runner(np.zeros((1, 1, 16, 16 * (k + 1)), np.float32))
    assert len(runner._buffers) == MAX_BUFFERS


def test_padding_to_a_bucket_never_changes_a_real_row() -> None:
    sess = session("resnet20_digits")
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(1).random((5, *sess.get_inputs()[0].shape[1:]), dtype=np.float32)
    plain = SessionRunner(sess, name, io_binding=False)(x)
    padded = SessionRunner(sess, name, io_binding=False, buckets=bucket_sizes(32, "pow2"))(x)
    assert padded.shape == plain.shape == (5, 10)
    np.testing.assert_allclose(padded, plain, rtol=1e-5, atol=1e-6)


def test_cuda_gets_the_cudnn_search_setting_and_the_cpu_none() -> None:
    s = Settings(models_dir=MODELS, cudnn_conv_algo_search="HEURISTIC")
    assert provider_options(s, ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        ("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"}),
        "CPUExecutionProvider",
    ]


def test_the_service_answers_the_same_with_io_binding_and_buckets_forced_on(digits) -> None:
    bodies = [png for png, _ in digits[:6]]

    def answers(**overrides) -> tuple[list, dict]:
        with ready_client(**overrides) as c:
            models = {m["name"]: m for m in c.get("/models").json()["models"]}
            files = [("files", (f"{i}.png", b, "image/png")) for i, b in enumerate(bodies)]
            r = c.post("/classify?top_k=3", files=files)
            assert r.status_code == 200, r.text
            return [res["predictions"] for res in r.json()["results"]], models

    default, default_models = answers()
    forced, forced_models = answers(io_binding="on", batch_buckets="pow2")
    assert not any(m["io_binding"] for m in default_models.values())  # CPU: auto leaves both off
    assert all(m["io_binding"] and m["batch_buckets"][0] == 1 for m in forced_models.values())
    for a, b in zip(default, forced):
        assert [p["label"] for p in a] == [p["label"] for p in b]
        np.testing.assert_allclose([p["score"] for p in a], [p["score"] for p in b], atol=1e-5)
