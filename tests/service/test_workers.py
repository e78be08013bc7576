"""--workers N: uvicorn workers feeding one inference engine through shared memory."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.service.conftest import running_server
from tests.service.test_server import assert_concurrent_requests_get_their_own_answers, direct_probabilities

# One 1x32x32 float32 image (4,096 bytes) fits a slot; requests of several images go inline on the socket.
SLOT_BYTES = 8192


@pytest.fixture(scope="module")
def workers_server():
    env = {"CONVSERVE_ARENA_SLOT_BYTES": str(SLOT_BYTES), "CONVSERVE_MAX_QUEUE_DELAY_MS": "2"}
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
