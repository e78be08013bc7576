"""The Python client (``convserve.client``) against a live server: every task, sync and async, typed
results, the server's errors as exceptions with code and request id, and 503s retried."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convserve.client import AsyncClient, Client, ConvServeError

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"


def test_every_task_through_the_sync_client(server) -> None:
    with Client(server) as c:
        assert c.ready() and {m["task"] for m in c.models()} >= {"classification", "segmentation", "denoising"}
        [r] = c.classify(EX / "digits" / "digit_7_white_on_black.png", top_k=3)
        assert r.label == "7" and len(r.predictions) == 3 and r.predictions[0].score > 0.5
        batch = c.classify(
            [
                EX / "digits" / "digit_2_black_on_white.png",
                np.asarray(Image.open(EX / "digits" / "digit_7_white_on_black.png")),
            ]
        )
        assert [b.label for b in batch] == ["2", "7"]
        seg = c.segment(EX / "cells" / "cells_16bit.tif", labels=True)
        assert seg.classes.shape == seg.labels.shape == (256, 256)
        assert seg.labels.max() == len(seg.objects) > 20
        d = c.denoise(EX / "denoise" / "noisy_camera_s25.png")
        assert isinstance(d.image, Image.Image) and d.image.size == (256, 256) and d.sigma_estimated > 15
        assert d.ensemble == 2 and c.denoise(EX / "denoise" / "noisy_camera_s25.png", ensemble=1).ensemble == 1
        assert d.noise_model == {"kind": "gaussian"}
        assert c.denoise(EX / "denoise" / "noisy_camera_s25.png", noise="auto").noise_model["kind"] == "gaussian"
        assert c.denoise(EX / "denoise" / "noisy_camera_s25.png", pd=True).pixel_shuffle == 2
        frames = np.load(EX / "radar" / "frames.npy")
        fc = c.nowcast(frames, timestep_minutes=6, steps=4)
        assert fc.frames.shape == (4, *frames.shape[1:]) and fc.lead_times_minutes == [6, 12, 18, 24]
        assert fc.unit == "dBZ" and isinstance(fc.no_rain_value, float)
        odim = sorted((EX / "radar").glob("*.h5"))
        assert c.nowcast(odim).frames.shape[0] == 10


def test_server_errors_become_exceptions_with_code_and_request_id(server) -> None:
    with Client(server) as c:
        with pytest.raises(ConvServeError) as e:
            c.classify(b"not an image")
        assert e.value.status == 422 and e.value.code == "undecodable_image" and e.value.request_id
        with pytest.raises(ConvServeError) as e:
            c.classify(EX / "digits" / "digit_7_white_on_black.png", model="nope")
        assert e.value.status == 404 and e.value.code == "model_not_found"


def test_the_async_client(server) -> None:
    async def main():
        async with AsyncClient(server) as c:
            results = await asyncio.gather(
                *(c.classify(EX / "digits" / "digit_7_white_on_black.png") for _ in range(8))
            )
            d = await c.denoise(EX / "denoise" / "noisy_camera_s25.png", sigma=25)
            return results, d

    results, d = asyncio.run(main())
    assert all(r[0].label == "7" for r in results) and d.sigma_used == 25 and d.sigma_estimated is None


def test_503_is_retried_after_retry_after() -> None:
    import httpx

    answers = [
        httpx.Response(503, headers={"Retry-After": "0"}, json={"error": {"code": "queue_full", "message": "busy"}})
    ] * 2
    answers.append(httpx.Response(200, json={"models": [{"name": "m"}]}))
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return answers[len(seen) - 1]

    c = Client("http://test", retries=3)
    c._http = httpx.Client(base_url="http://test", transport=httpx.MockTransport(handler))
    assert c.models() == [{"name": "m"}] and seen == ["/models"] * 3
    c = Client("http://test", retries=1)
    c._http = httpx.Client(base_url="http://test", transport=httpx.MockTransport(lambda r: answers[0]))
    with pytest.raises(ConvServeError, match="queue_full"):
        c.models()
