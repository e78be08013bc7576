"""The benchmark's own machinery (``make bench`` itself is not part of the test suite): reading wrk's
report, the baselines it compares against, and the targets computed from a run's results."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from bench.load import parse_wrk
from bench.report import targets

ROOT = Path(__file__).resolve().parents[1]

WRK_OUT = """Running 5s test @ http://127.0.0.1:8000/classify
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.43ms    2.10ms  30.12ms   80.00%
    Req/Sec   839.90     50.00   900.00     70.00%
  Latency Distribution
     50%    9.43ms
     75%   10.12ms
     90%  850.00us
     99%    1.20s
  4200 requests in 5.00s, 1.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:    839.90
Transfer/sec:    200.00KB
"""


def test_wrk_report_is_read_with_units():
    r = parse_wrk(WRK_OUT)
    assert r["rps"] == 839.9 and r["requests"] == 4200
    assert (r["p50_ms"], r["p90_ms"], r["p99_ms"]) == (9.43, 0.85, 1200.0)
    assert r["non_2xx"] == 3 and r["socket_errors"] == 3


def test_wrk_without_latencies_is_an_error():
    with pytest.raises(RuntimeError, match="no latency distribution"):
        parse_wrk("Running 5s test\n  0 requests in 5.00s\n")


@pytest.mark.parametrize("backend", ["ort", "torch"])
def test_plain_baselines_classify_a_digit(backend):
    from bench.plain_server import make_app

    buf = io.BytesIO()
    Image.open(ROOT / "examples" / "digits" / "digit_7_white_on_black.png").convert("L").save(buf, format="PNG")
    with TestClient(make_app(ROOT / "models" / "lenet5_digits", backend)) as client:
        r = client.post("/classify", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert r.status_code == 200
    body = r.json()
    assert body["label"] in [str(i) for i in range(10)] and 0 <= body["index"] < 10
    if backend == "ort":  # the committed weights: the same answer as the service gives
        assert body["label"] == "7"


def _point(rps: float, p50: float = 1.0, p99: float = 1.5) -> dict:
    return {"rps": rps, "requests": int(rps * 5), "p50_ms": p50, "p99_ms": p99, "non_2xx": 0}


def test_targets_are_ratios_of_the_same_run():
    per = {c: _point(100.0) for c in (1, 8, 32, 128)}
    results = {
        "workloads": {
            "LeNet-5 (64x64 PNG)": {
                "raw_per_s": {1: 1000.0},
                "http": {
                    "convserve": per | {32: _point(250.0)},
                    "plain": per,
                    "plain_torch": per | {32: _point(40.0)},
                },
            },
            "ResNet-50 (224x224 JPEG)": {
                "raw_per_s": {1: 10.0, 8: 20.0},
                "http": {
                    "convserve": {1: _point(9.0), 8: _point(19.5, 100, 300), 32: _point(18.0)},
                    "preferred": {1: _point(9.0), 8: _point(19.0), 32: _point(19.2)},
                },
                "preferred_batch": 8,
            },
        },
        "cold_start": {"median_s": 2.5},
    }
    lines = "\n".join(targets(results))
    assert "MET     LeNet-5 32 clients, ConvServe / plain FastAPI+ORT: 2.50" in lines
    assert "MET     LeNet-5 32 clients, ConvServe / plain FastAPI+PyTorch: 6.25" in lines
    assert "MET     ResNet-50 8 clients, ConvServe / raw ORT best batch: 0.97" in lines
    assert "NOT MET ResNet-50 32 clients, ConvServe / raw ORT best batch: 0.90" in lines
    assert "NOT MET ResNet-50 8 clients, p99 / p50: 3.00" in lines
    assert "(preferred_batch_size 8: 8 / 32 clients / raw best batch 0.95 / 0.96)" in lines
    assert "MET     cold start" in lines


def test_preferred_batch_variant_writes_tritons_field(tmp_path):
    from bench.run import with_preferred_batch
    from modelrepo.model_config import parse_model_config

    repo = tmp_path / "repo"
    (repo / "m").mkdir(parents=True)
    (repo / "m" / "config.pbtxt").write_text((ROOT / "models" / "lenet5_digits" / "config.pbtxt").read_text())
    out = with_preferred_batch(repo, tmp_path / "pref", "m", 8)
    assert parse_model_config((out / "m" / "config.pbtxt").read_text()).preferred_batch_sizes == [8]
    assert parse_model_config((repo / "m" / "config.pbtxt").read_text()).preferred_batch_sizes == []


def test_gpu_script_paths_agree_on_the_cpu(tmp_path):
    """bench/gpu.py's ORT paths (numpy I/O and IO binding) run on the CPU execution provider too and
    compute the same network as torch eager."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from bench.gpu import _export, ort_rows, torch_rows
    from training.nets import build

    torch.manual_seed(0)
    net = build("lenet5", preset="small", num_classes=10, in_channels=1).eval()
    path = _export(net, torch.zeros(1, 1, 32, 32), tmp_path / "lenet5.onnx")
    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)
    rows = ort_rows(path, x, cuda=False, reps=2) | torch_rows(net, x, cuda=False, reps=2)
    assert set(rows) == {"ort cpu numpy", "ort cpu io-binding", "convserve runner cpu", "torch cpu fp32"}
    assert min(rows.values()) > 0
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        np.testing.assert_allclose(sess.run(None, {"input": x})[0], net(torch.from_numpy(x)).numpy(), atol=1e-4)


def test_httpload_counts_answers_latencies_and_refusals():
    """The standard-library load generator (for machines without wrk) against a real server."""
    import numpy as np

    from bench.httpload import load
    from tests.service.conftest import png_bytes, running_server

    digit = png_bytes((np.eye(8, dtype=np.uint8) * 255), 64)
    with running_server() as url:
        ok = load(f"{url}/classify?model=lenet5_digits", digit, "image/png", clients=4, seconds=1.0, processes=2)
        refused = load(f"{url}/classify", b"not an image", "image/png", clients=2, seconds=0.5)
    assert ok["requests"] > 4 and ok["non_2xx"] == 0 and ok["socket_errors"] == 0
    assert 0 < ok["p50_ms"] <= ok["p90_ms"] <= ok["p99_ms"] and ok["rps"] == pytest.approx(ok["requests"] / 1.0)
    assert refused["requests"] > 0 and refused["non_2xx"] == refused["requests"]


def test_gpu_http_script_runs_on_the_cpu():
    """bench/gpu_http.py end to end with the CPU provider and a committed classifier (a smoke test of
    the script the GPU machine runs; its GPU figures exist only once it has run there)."""
    import subprocess
    import sys

    cmd = [sys.executable, "bench/gpu_http.py", "--cpu", "--model", "models/lenet5_digits", "--workers", "1"]
    cmd += ["--clients", "2", "--seconds", "1", "--load-processes", "1"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("lenet5_digits cpu: ")]
    assert len(rows) == 3 and "convserve x1" in rows[1] and "plain" in rows[2]
    assert all(float(r.split()[-4]) > 0 and r.split()[-1] == "0" for r in rows[1:])  # req/s, no refusal


STACKS = """thread (11): MainThread;run (asyncio);handle (fastapi/routing.py:1);frame_digit (modelrepo/framing.py:219) 6
thread (11): MainThread;run (asyncio);handle (fastapi/routing.py:1);render (starlette/responses.py:9) 3
thread (11): MainThread;run (asyncio);select (selectors.py:468) 1
thread (12): infer-lenet5_digits_0;_worker (concurrent/futures/thread.py:81);run (onnxruntime/capi/x.py:395) 8
thread (12): infer-lenet5_digits_0;_worker (concurrent/futures/thread.py:81) 2
"""


def test_profile_shares_are_per_thread_and_inclusive():
    from bench.profile import IDLE, inclusive_shares, own_time, threads

    shares, total = inclusive_shares(STACKS)
    assert total == 10  # the event loop thread's samples only
    assert shares["routing / FastAPI request machinery"] == pytest.approx(0.9)  # on the stack in 9 of 10
    assert shares["digit framing (frame_digit)"] == pytest.approx(0.6)
    assert shares["response encoding + send"] == pytest.approx(0.3)
    assert shares[IDLE] == pytest.approx(0.1)  # asyncio's select as the innermost frame
    assert shares["ONNX Runtime run"] == 0.0  # that ran on the inference thread
    assert threads(STACKS) == {"infer-lenet5_digits_0": (10, 0.8), "MainThread": (10, 0.0)}
    assert own_time(STACKS)[0] == ("frame_digit (modelrepo/framing.py:219)", 0.6)
    uvloop = "thread (11): MainThread;main (service/__main__.py:9);Runner.run (asyncio/runners.py:118) 4\n"
    assert inclusive_shares(uvloop)[0][IDLE] == 1.0  # under uvloop the waiting loop's innermost frame is the runner
