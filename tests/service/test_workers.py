"""--workers N: uvicorn workers feeding one inference engine through shared memory."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from service.batch_tune import preferred_size
from tests.service.conftest import running_server
from tests.service.test_server import assert_concurrent_requests_get_their_own_answers, direct_probabilities

# One 1x32x32 float32 image (4,096 bytes) fits a slot; requests of several images go inline on the socket.
SLOT_BYTES = 8192


@pytest.fixture(scope="module")
def workers_server():
    # batching across workers is what is tested: warm-up tuning could make a model prefer batch 1
    env = {"CONVSERVE_ARENA_SLOT_BYTES": str(SLOT_BYTES), "CONVSERVE_MAX_QUEUE_DELAY_MS": "2"}
    env["CONVSERVE_BATCH_TUNE"] = "off"
    with running_server("--workers", "2", env=env) as base:
        yield base


def test_concurrent_requests_are_batched_across_workers_and_stay_distinct(workers_server, digits) -> None:
    assert_concurrent_requests_get_their_own_answers(workers_server, digits)
    metrics = httpx.get(f"{workers_server}/metrics").text
    lines = {ln.split()[0]: float(ln.split()[1]) for ln in metrics.splitlines() if ln and not ln.startswith("#")}
    images = lines['nv_inference_count{model="resnet20_digits",version="1"}']
    batches = lines['nv_inference_exec_count{model="resnet20_digits",version="1"}']
    assert images >= 50 and batches < images  # merged from the engine, and batched
    assert lines['convserve_http_requests_total{model="resnet20_digits",route="/classify",status="200"}'] >= 50


def test_large_requests_travel_inline_and_stay_correct(workers_server, digits) -> None:
    sample = [d for d, _ in digits[60:72]]  # 12 images: 48 KiB of input, more than a slot
    files = [("files", (f"{i}.png", d, "image/png")) for i, d in enumerate(sample)]
    r = httpx.post(f"{workers_server}/classify?model=resnet20_digits&top_k=1", files=files, timeout=60)
    assert r.status_code == 200, r.text
    p = direct_probabilities("resnet20_digits", sample)
    got = [res["predictions"][0] for res in r.json()["results"]]
    assert [g["index"] for g in got] == list(p.argmax(1))
    np.testing.assert_allclose([g["score"] for g in got], p.max(1), atol=1e-4)


def test_workers_report_models_errors_and_readiness(workers_server, digits) -> None:
    models = httpx.get(f"{workers_server}/models").json()["models"]
    assert models and all(m["ready"] and m["provider"] for m in models)
    r = httpx.post(f"{workers_server}/classify?model=nope", content=digits[0][0], headers={"content-type": "image/png"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert httpx.get(f"{workers_server}/health/ready").status_code == 200


def test_nowcast_rollout_through_the_engine_equals_in_process(workers_server, client) -> None:
    """The five rollout steps travel through the engine (slots or inline) and give the in-process forecast."""
    from dataclasses import replace

    from training.data.radar import RadarParams, generate_sequence

    frames = generate_sequence(9, 3, replace(RadarParams(), size=40)).tolist()
    body = {"frames": frames, "timestep_minutes": 6}
    remote = httpx.post(f"{workers_server}/nowcast", json=body, timeout=60)
    local = client.post("/nowcast", json=body)
    assert remote.status_code == local.status_code == 200, remote.text
    np.testing.assert_allclose(np.array(remote.json()["frames"]), np.array(local.json()["frames"]), atol=1e-3)


@pytest.mark.timeout(180)
def test_a_worker_started_while_the_engine_is_down_answers_503_then_serves_once_it_is_back(tmp_path, digits):
    """A front-end worker (re)started while the supervisor restarts the engine must not fail its start-up:
    uvicorn then stops every worker. It starts not ready (503 with Retry-After), the status poll reconnects."""
    import asyncio
    import contextlib
    import shutil
    import threading
    import time

    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.engine import Engine
    from service.settings import Settings
    from tests.conftest import MODELS

    repo = tmp_path / "repo"
    shutil.copytree(MODELS / "lenet5_digits", repo / "lenet5_digits")
    sock = str(tmp_path / "engine.sock")  # no engine behind it yet
    png, label = digits[0]
    post = {"content": png, "headers": {"content-type": "image/png"}}
    stop = threading.Event()

    async def engine() -> None:  # the restarted engine, on the same socket, in a thread of its own
        task = asyncio.create_task(Engine(Settings(models_dir=repo)).serve(sock))
        while not stop.is_set():
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    thread = threading.Thread(target=asyncio.run, args=(engine(),), daemon=True)
    try:
        with TestClient(create_app(Settings(models_dir=repo, engine_socket=sock, arena_slots=2))) as c:
            assert c.get("/health/ready").status_code == 503
            for path in ("/classify", "/classify?model=lenet5_digits"):
                r = c.post(path, **post)
                assert r.status_code == 503 and r.headers["retry-after"], r.text
            thread.start()
            deadline = time.time() + 120
            while c.get("/health/ready").status_code != 200 and time.time() < deadline:
                time.sleep(0.1)
            r = c.post("/classify?model=lenet5_digits", **post)
            assert r.status_code == 200, r.text
            assert r.json()["results"][0]["predictions"][0]["index"] == label
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(10)


def test_workers_show_the_engines_batch_tuning(models_copy) -> None:
    """The engine tunes its batchers after readiness; every worker's /models shows what it chose."""
    with running_server("--workers", "2", "--models", str(models_copy)) as base:
        deadline = time.monotonic() + 60
        while (m := httpx.get(f"{base}/models/lenet5_digits").json())["batch_tuning_ms_per_row"] is None:
            assert time.monotonic() < deadline, "no batch tuning reported within 60 s"
            time.sleep(0.3)
        per_row = {int(k): v for k, v in m["batch_tuning_ms_per_row"].items()}
        assert {1, 2, m["max_batch_size"]} <= set(per_row)
        want = preferred_size(per_row, m["max_batch_size"])
        assert m["preferred_batch_sizes"] == ([want] if want else [])
