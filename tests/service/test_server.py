"""Against a real uvicorn process on 127.0.0.1: concurrency, batching correctness, health, metrics."""

from __future__ import annotations

import asyncio
import io

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from modelrepo.preprocess import preprocess
from modelrepo.repository import check_model_dir
from tests.conftest import MODELS


def direct_probabilities(model: str, images: list[bytes]) -> np.ndarray:
    """What ONNX Runtime itself says for these images, preprocessed by the card."""
    entry = check_model_dir(MODELS / model)
    sess = ort.InferenceSession(str(entry.version_path()), providers=["CPUExecutionProvider"])
    x = preprocess([Image.open(io.BytesIO(d)) for d in images], entry.card.input)
    logits = sess.run(None, {"input": x})[0]
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def assert_concurrent_requests_get_their_own_answers(base: str, digits, n: int = 50) -> None:
    sample = [d for d, _ in digits[:n]]
    p = direct_probabilities("resnet20_digits", sample)

    async def burst():
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            return await asyncio.gather(
                *(
                    c.post("/classify?model=resnet20_digits&top_k=1", content=d, headers={"content-type": "image/png"})
                    for d in sample
                )
            )

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses)
    for i, r in enumerate(responses):
        top = r.json()["results"][0]["predictions"][0]
        assert top["index"] == int(p[i].argmax())
        assert abs(top["score"] - float(p[i].max())) < 1e-4
    batch_sizes = [r.json()["timings"]["batch_size"] for r in responses]
    assert max(batch_sizes) > 1  # under concurrency requests were batched together


def test_fifty_concurrent_distinct_requests_each_get_their_own_answer(server, digits) -> None:
    assert_concurrent_requests_get_their_own_answers(server, digits)


def test_real_server_health_models_and_metrics(server) -> None:
    assert httpx.get(f"{server}/health/live").json() == {"status": "alive"}
    models = httpx.get(f"{server}/models").json()["models"]
    assert all(m["ready"] for m in models)
    assert "nv_inference_exec_count{" in httpx.get(f"{server}/metrics").text


def test_full_queue_answers_503_with_retry_after_and_recovers(digits) -> None:
    from tests.service.conftest import running_server

    env = {"CONVSERVE_MAX_QUEUE_LENGTH": "32", "CONVSERVE_MAX_BATCH_SIZE": "32"}
    with running_server(env=env) as base:
        # each occlusion request queues 50 images (the image and its 49 occluded copies)
        async def burst():
            async with httpx.AsyncClient(base_url=base, timeout=60) as c:
                return await asyncio.gather(
                    *(
                        c.post(
                            "/classify?model=resnet20_digits&explain=occlusion",
                            content=digits[i][0],
                            headers={"content-type": "image/png"},
                        )
                        for i in range(8)
                    )
                )

        responses = asyncio.run(burst())
        statuses = sorted(r.status_code for r in responses)
        assert 503 in statuses and 200 in statuses, statuses
        refused = next(r for r in responses if r.status_code == 503)
        assert refused.json()["error"]["code"] == "queue_full" and refused.headers["retry-after"] == "1"
        ok = httpx.post(f"{base}/classify", content=digits[0][0], headers={"content-type": "image/png"})
        assert ok.status_code == 200  # nothing stuck: the queue drained


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_finishes_the_request_in_flight_and_exits_0(workers: int) -> None:
    """Graceful shutdown: a request already being served when SIGTERM arrives still gets its 200;
    new connections are refused; the server exits 0 within the bound (single and --workers)."""
    import signal
    import sys
    import threading
    import time

    from service.launch import ServerProcess, free_port
    from tests.conftest import MODELS

    port = free_port()
    cmd = [sys.executable, "-m", "service", "--models", str(MODELS), "--port", str(port), "--workers", str(workers)]
    server = ServerProcess(cmd, port, MODELS.parent, timeout_s=120)
    big = (np.random.default_rng(0).random((1200, 1200)) * 255).astype(np.uint8)  # slow: many denoising tiles
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="PNG")
    result: dict = {}

    def post() -> None:
        r = httpx.post(
            f"{server.url}/denoise?sigma=20", content=buf.getvalue(), headers={"content-type": "image/png"}, timeout=120
        )
        result["status"] = r.status_code

    t = threading.Thread(target=post)
    t.start()
    time.sleep(1.0)  # the request is in flight
    server.proc.send_signal(signal.SIGTERM)
    t.join(120)
    code = server.proc.wait(60)
    assert result.get("status") == 200, server.log_text()[-2000:]
    assert code == 0, server.log_text()[-2000:]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/health/live", timeout=2)
    server.stop()
