"""The baseline: a plain FastAPI endpoint that runs the same ONNX session once per request.

Same decode and preprocessing as ConvServe (the card's), no batching, no queue - what most
people write first. ``python bench/plain_server.py MODEL_DIR PORT``.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, Request
from PIL import Image

from modelrepo.preprocess import preprocess
from modelrepo.repository import check_model_dir


def make_app(model_dir: Path) -> FastAPI:
    entry = check_model_dir(model_dir)
    assert entry.ok and entry.card is not None, entry.problems
    card = entry.card
    sess = ort.InferenceSession(str(entry.version_path()), providers=["CPUExecutionProvider"])
    app = FastAPI()

    @app.post("/classify")
    async def classify_raw(request: Request) -> dict:
        data = await request.body()
        x = preprocess([Image.open(io.BytesIO(data))], card.input)
        logits = await _run(sess, card.input.name, x)
        i = int(np.argmax(logits[0]))
        return {"label": card.labels[i], "index": i}

    @app.get("/health/ready")
    async def ready() -> dict:
        return {"status": "ready"}

    return app


async def _run(sess: ort.InferenceSession, name: str, x: np.ndarray) -> np.ndarray:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(lambda: sess.run(None, {name: x})[0])


if __name__ == "__main__":
    uvicorn.run(make_app(Path(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
