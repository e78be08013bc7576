"""Against a real uvicorn process on 127.0.0.1: concurrency, batching correctness, CLI."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys

import httpx
import numpy as np
import onnxruntime as ort
from PIL import Image

from modelrepo.preprocess import preprocess
from modelrepo.repository import check_model_dir
from tests.conftest import MODELS, ROOT


def test_fifty_concurrent_distinct_requests_each_get_their_own_answer(server, digits) -> None:
    entry = check_model_dir(MODELS / "resnet20_digits")
    sess = ort.InferenceSession(str(entry.version_path()), providers=["CPUExecutionProvider"])
    sample = digits[:50]
    x = preprocess([Image.open(io.BytesIO(d)) for d, _ in sample], entry.card.input)
    expected = sess.run(None, {"input": x})[0]
    p = np.exp(expected - expected.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)

    async def burst():
        async with httpx.AsyncClient(base_url=server, timeout=60) as c:
            return await asyncio.gather(
                *(
                    c.post("/classify?model=resnet20_digits&top_k=1", content=d, headers={"content-type": "image/png"})
                    for d, _ in sample
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


def test_real_server_health_models_and_metrics(server) -> None:
    assert httpx.get(f"{server}/health/live").json() == {"status": "alive"}
    models = httpx.get(f"{server}/models").json()["models"]
    assert all(m["ready"] for m in models)
    assert "nv_inference_exec_count_total" in httpx.get(f"{server}/metrics").text


def test_cli_refuses_multiple_workers_for_now() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "service", "--workers", "2"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "--workers" in r.stderr
