"""What the benchmark sends: one request body per model, the endpoint, and the raw ONNX Runtime limit.

Classifiers: LeNet-5 (the committed digits model, a 64x64 PNG) and ResNet-50 (imagenet preset, random
weights, a 224x224 JPEG), on /classify and for LeNet-5 also on the v2 protocol with a binary tensor.
The segmentation, denoising and nowcast models at native size on their own endpoints, with the
example files that ship in ``examples/``.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from modelrepo.preprocess import preprocess
from modelrepo.repository import check_model_dir
from service.registry import session_options
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Workload:
    label: str
    model_dir: Path
    path: str  # endpoint, e.g. /classify
    body: bytes
    ctype: str
    kinds: tuple[str, ...]
    raw_input: np.ndarray  # one network input (batch 1) for the raw ORT limit
    raw_batches: tuple[int, ...]
    header: str = ""  # one extra request header ("Name: value")
    note: str = ""


def raw_throughput(model_dir: Path, x1: np.ndarray, batches: tuple[int, ...], budget_s: float) -> dict[int, float]:
    """Network inputs/s of one ORT session per batch size (the service's session options)."""
    entry = check_model_dir(model_dir)
    sess = ort.InferenceSession(
        str(entry.version_path()), session_options(Settings()), providers=["CPUExecutionProvider"]
    )
    name = sess.get_inputs()[0].name
    out = {}
    for b in batches:
        x = np.ascontiguousarray(np.repeat(x1, b, axis=0))
        sess.run(None, {name: x})  # warm
        n, t0 = 0, time.perf_counter()
        while (el := time.perf_counter() - t0) < budget_s or n < 2:
            sess.run(None, {name: x})
            n += 1
        out[b] = n * b / el
    return out


def classify_workload(label: str, model_dir: Path, image: bytes, ctype: str, kinds, batches) -> Workload:
    card = check_model_dir(model_dir).card
    x = preprocess([Image.open(io.BytesIO(image))], card.input)
    return Workload(label, model_dir, "/classify", image, ctype, kinds, x, batches)


def v2_workload(model_dir: Path, image: bytes) -> Workload:
    """LeNet-5's preprocessed tensor as Triton's binary tensor extension (JSON header + raw float32)."""
    card = check_model_dir(model_dir).card
    x = preprocess([Image.open(io.BytesIO(image))], card.input)
    head = {
        "inputs": [
            {
                "name": card.input.name,
                "shape": list(x.shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": x.nbytes},
            }
        ],
        "outputs": [{"name": card.output.name, "parameters": {"binary_data": True}}],
    }
    header = json.dumps(head).encode()
    length = f"Inference-Header-Content-Length: {len(header)}"
    return Workload(
        "LeNet-5 v2 binary (1x1x32x32 FP32)", model_dir, f"/v2/models/{model_dir.name}/infer", header + x.tobytes(),
        "application/octet-stream", ("convserve", "workers2"), x, (1,), length,
    )  # fmt: skip


def task_workloads(models: Path) -> list[Workload]:
    """Segmentation, denoising and nowcasting at the native size of the shipped examples."""
    ex = ROOT / "examples"
    cells = np.asarray(Image.open(ex / "cells" / "cells_16bit.tif"), np.float32)
    noisy = np.asarray(Image.open(ex / "denoise" / "noisy_camera_s25.png"), np.float32) / 255
    frames = np.load(ex / "radar" / "frames.npy", allow_pickle=False)
    kinds = ("convserve", "nobatch", "workers2")
    rng = np.random.default_rng(0)
    return [
        Workload(
            f"unet_cells /segment ({cells.shape[1]}x{cells.shape[0]} 16-bit TIFF)", models / "unet_cells", "/segment",
            (ex / "cells" / "cells_16bit.tif").read_bytes(), "image/tiff", kinds,
            rng.random((1, 1, *cells.shape), np.float32), (1, 4),
            note="a request is one or two forward passes (diameter estimate, rescale) plus instances",
        ),
        Workload(
            f"unet_denoise_gray /denoise ({noisy.shape[1]}x{noisy.shape[0]} PNG)", models / "unet_denoise_gray",
            "/denoise", (ex / "denoise" / "noisy_camera_s25.png").read_bytes(), "image/png", kinds,
            np.stack([noisy, np.full_like(noisy, 25 / 255)])[None], (1, 4),
        ),
        Workload(
            f"unet_nowcast /nowcast ({frames.shape[0]} frames {frames.shape[2]}x{frames.shape[1]} npy)",
            models / "unet_nowcast", "/nowcast", (ex / "radar" / "frames.npy").read_bytes(), "application/x-npy",
            kinds, rng.random((1, 3, *frames.shape[1:]), np.float32), (1, 4),
            note="a request is a 10-step rollout: 10 forward passes",
        ),
    ]  # fmt: skip
