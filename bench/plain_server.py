"""The baselines: a plain FastAPI endpoint that runs the model once per request.

``ort``: the same ONNX session ConvServe loads; ``torch``: the PyTorch network eagerly (built from the
card's architecture; random weights unless a state dict is given - a forward pass costs the same).
Same decode and preprocessing as ConvServe (the card's), no batching, no queue - what most people
write first. ``python bench/plain_server.py MODEL_DIR PORT [ort|torch]``.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from PIL import Image
from starlette.concurrency import run_in_threadpool

from modelrepo.preprocess import preprocess
from modelrepo.repository import check_model_dir


def ort_runner(entry):
    import os

    import onnxruntime as ort

    # PLAIN_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider on a GPU host (bench/gpu_http.py)
    providers = os.environ.get("PLAIN_PROVIDERS", "CPUExecutionProvider").split(",")
    sess = ort.InferenceSession(str(entry.version_path()), providers=providers)
    name = entry.card.input.name
    return lambda x: sess.run(None, {name: x})[0]


def torch_runner(entry):
    import torch

    from training.nets import build

    arch = entry.card.architecture
    card = entry.card
    model = build(arch.name, arch.preset, len(card.labels), card.input.channels, **arch.kwargs).eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return run


def make_app(model_dir: Path, backend: str = "ort") -> FastAPI:
    entry = check_model_dir(model_dir)
    assert entry.ok and entry.card is not None, entry.problems
    card = entry.card
    run = (torch_runner if backend == "torch" else ort_runner)(entry)
    app = FastAPI()

    @app.post("/classify")
    async def classify_raw(request: Request) -> dict:
        data = await request.body()
        x = preprocess([Image.open(io.BytesIO(data))], card.input)
        logits = await run_in_threadpool(run, x)
        i = int(np.argmax(logits[0]))
        return {"label": card.labels[i], "index": i}

    @app.get("/health/ready")
    async def ready() -> dict:
        return {"status": "ready"}

    return app


if __name__ == "__main__":
    backend = sys.argv[3] if len(sys.argv) > 3 else "ort"
    uvicorn.run(make_app(Path(sys.argv[1]), backend), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
