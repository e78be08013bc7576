"""Faults, with real ONNX Runtime sessions on real (deliberately faulty) ONNX graphs:
- a model whose graph fails at run time for some inputs: those callers get a 500 JSON naming the
  request id, the batcher goes on, later requests succeed;
- a model slower than the request timeout: its callers get a 504, another model answers while the
  slow batch is still running;
- the inference engine process killed in ``--workers`` mode: 503s, then it is restarted and the
  same front-end workers serve again.
(A corrupt or sha-mismatched model is covered in test_models_health_metrics.py.)"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from modelrepo.card import ModelCard, VersionFile
from modelrepo.repository import sha256_file
from tests.conftest import MODELS
from tests.service.conftest import ready_client


def _gather_graph() -> onnx.ModelProto:
    """logits = table[int(1000 * x[n, 0, 0, 0])]: fine for x[..., 0, 0] in [0, 0.009], an ONNX Runtime
    error ("indices element out of data bounds") for larger values."""
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("Slice", ["flat", "zero", "one", "one"], ["first"]),
        helper.make_node("Mul", ["first", "thousand"], ["scaled"]),
        helper.make_node("Cast", ["scaled"], ["idx2"], to=TensorProto.INT64),
        helper.make_node("Squeeze", ["idx2", "one"], ["idx"]),
        helper.make_node("Gather", ["table", "idx"], ["logits"], axis=0),
    ]
    inits = [
        helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
        helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        helper.make_tensor("thousand", TensorProto.FLOAT, [], [1000.0]),
        helper.make_tensor("table", TensorProto.FLOAT, [10, 10], np.eye(10, dtype=np.float32).ravel().tolist()),
    ]
    return _model(nodes, inits)


def _slow_graph(n: int = 4096) -> onnx.ModelProto:
    """A (n x n) @ (n x n) product that depends on the input (no constant folding): about 2 * n^3 flops
    per call, seconds on these cores; the logits are the first 10 values of its first row."""
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),
        helper.make_node(
            "ConstantOfShape", ["shape"], ["ones"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])
        ),
        helper.make_node("Add", ["ones", "m"], ["a"]),
        helper.make_node("MatMul", ["a", "a"], ["p"]),
        helper.make_node("Slice", ["p", "zero", "ten", "one"], ["row"]),
        helper.make_node("Slice", ["row", "zero", "one", "zero"], ["logits1"]),
        helper.make_node("Shape", ["input"], ["in_shape"]),
        helper.make_node("Slice", ["in_shape", "zero", "one", "zero"], ["batch"]),
        helper.make_node("Concat", ["batch", "ten"], ["out_shape"], axis=0),
        helper.make_node("Expand", ["logits1", "out_shape"], ["logits"]),
    ]
    inits = [
        helper.make_tensor("shape", TensorProto.INT64, [2], [n, n]),
        helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
        helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        helper.make_tensor("ten", TensorProto.INT64, [1], [10]),
    ]
    return _model(nodes, inits)


def _model(nodes, inits) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "fault",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _add_model(root: Path, name: str, proto: onnx.ModelProto) -> None:
    """``name``: lenet5_digits's card, config and labels around another graph."""
    src, dst = MODELS / "lenet5_digits", root / name
    (dst / "1").mkdir(parents=True)
    onnx.save(proto, dst / "1" / "model.onnx")
    shutil.copy(src / "labels.txt", dst / "labels.txt")
    (dst / "config.pbtxt").write_text((src / "config.pbtxt").read_text().replace('"lenet5_digits"', f'"{name}"'))
    card = ModelCard.load(src / "card.json")
    f = dst / "1" / "model.onnx"
    card = card.model_copy(
        update={
            "name": name,
            "versions": {1: VersionFile(path="1/model.onnx", sha256=sha256_file(f), bytes=f.stat().st_size)},
        }
    )
    card.dump(dst / "card.json")


@pytest.fixture(scope="module")
def fault_repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    shutil.copytree(MODELS / "lenet5_digits", root / "lenet5_digits")
    _add_model(root, "faulty_digits", _gather_graph())
    _add_model(root, "slow_digits", _slow_graph())
    return root


def _v2(x: np.ndarray) -> dict:
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}


def test_a_model_failing_on_a_batch_answers_500_with_the_request_id_and_goes_on(fault_repo, digits) -> None:
    good, bad = np.zeros((1, 1, 32, 32), np.float32), np.ones((1, 1, 32, 32), np.float32)
    with ready_client(models_dir=fault_repo, max_queue_delay_ms=0) as c:
        r = c.post("/v2/models/faulty_digits/infer", json=_v2(bad), headers={"x-request-id": "fault-1"})
        assert r.status_code == 500 and "fault-1" in r.json()["error"] and "out of" in r.json()["error"]
        r = c.post("/classify?model=faulty_digits", content=digits[0][0], headers={"content-type": "image/png"})
        # the task route too (a normalised background pixel is negative: out of the table's bounds)
        assert r.status_code == 500 and r.json()["error"]["code"] == "inference_failed"
        assert r.headers["x-request-id"] in r.json()["error"]["message"]
        for _ in range(3):
            assert c.post("/v2/models/faulty_digits/infer", json=_v2(good)).status_code == 200
        r = c.post("/v2/models/faulty_digits/infer", json=_v2(bad))
        assert r.status_code == 500  # fails again, and only for what fails
        assert c.get("/health/ready").status_code == 200
        r = c.post("/classify?model=lenet5_digits", content=digits[0][0], headers={"content-type": "image/png"})
        assert r.status_code == 200  # other models never noticed
        metrics = c.get("/metrics").text
        assert 'nv_inference_request_failure{model="faulty_digits",reason="BACKEND",version="1"} 3.0' in metrics


def test_a_model_slower_than_the_timeout_gets_504_while_another_model_answers(fault_repo, digits) -> None:
    with ready_client(models_dir=fault_repo, request_timeout_s=0.3) as c:
        slow_status = {}

        def call_slow() -> None:
            x = np.zeros((1, 1, 32, 32), np.float32)
            slow_status["code"] = c.post("/v2/models/slow_digits/infer", json=_v2(x)).status_code

        t = threading.Thread(target=call_slow)
        t.start()
        t.join(60)
        assert slow_status["code"] == 504  # after 0.3 s; its 137-GFLOP batch is still running
        r = c.post("/classify?model=lenet5_digits", content=digits[0][0], headers={"content-type": "image/png"})
        assert r.status_code == 200 and r.json()["results"][0]["predictions"][0]["index"] == digits[0][1]
        # lenet5 answered while the slow model's batch had not finished: it never waited behind it
        assert 'nv_inference_exec_count{model="slow_digits",version="1"} 1.0' not in c.get("/metrics").text


def _children(pid: int) -> dict[int, str]:
    """pid -> command line of the direct children of ``pid`` (from /proc)."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
    return out


def _engine_pid(base: str) -> int:
    """The engine's pid, once every front-end worker answers ready (the first one may be alone)."""
    deadline = time.time() + 60
    while time.time() < deadline:
        pids = {httpx.get(f"{base}/health/ready").json().get("engine", {}).get("pid") for _ in range(6)}
        if len(pids) == 1 and None not in pids:
            return pids.pop()
        time.sleep(0.2)
    raise AssertionError(f"the workers do not agree on one ready engine: {pids}")


def test_a_killed_engine_is_restarted_and_the_same_workers_serve_again(digits) -> None:
    from service.launch import ServerProcess, free_port
    from tests.conftest import ROOT

    data, headers = digits[0][0], {"content-type": "image/png"}
    port = free_port()
    cmd = [sys.executable, "-m", "service", "--models", str(MODELS), "--port", str(port), "--workers", "2"]
    server = ServerProcess(cmd, port, ROOT, timeout_s=120)
    try:
        base = server.url
        engine = _engine_pid(base)
        workers = set(_children(server.proc.pid)) - {engine}
        assert len(workers) >= 2
        assert httpx.post(f"{base}/classify", content=data, headers=headers, timeout=30).status_code == 200
        os.kill(engine, signal.SIGKILL)
        seen = []
        deadline = time.time() + 90
        while time.time() < deadline and not (503 in seen and seen[-1] == 200):
            r = httpx.post(f"{base}/classify", content=data, headers=headers, timeout=30)
            seen.append(r.status_code)
            assert r.status_code in (200, 503), r.text
            if r.status_code == 503:
                assert r.headers.get("retry-after") and r.json()["error"]["code"]
            time.sleep(0.2)
        assert 503 in seen and seen[-1] == 200, seen[-20:]
        assert r.json()["results"][0]["predictions"][0]["index"] == digits[0][1]
        assert _engine_pid(base) != engine
        assert workers <= set(_children(server.proc.pid)), "the front-end workers were restarted"
        assert "restarting it" in server.log_text()
    finally:
        assert server.stop() == 0
