"""Service fixtures: the real app on the committed models (in-process and as a real uvicorn server)."""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app
from service.launch import ServerProcess, free_port
from service.settings import Settings
from tests.conftest import MODELS, ROOT
from training.data import load_digits_splits


def png_bytes(pixels: np.ndarray, size: int | None = None) -> bytes:
    img = Image.fromarray(pixels)
    if size:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def digits() -> list[tuple[bytes, int]]:
    """Held-out digits as the 8-bit PNGs a user would send (upscaled to 64x64), with their labels."""
    test = load_digits_splits(seed=0).test
    return [(png_bytes(im, 64), int(y)) for im, y in zip(test.images, test.labels)]


def make_client(warmup: bool = True, **overrides) -> TestClient:
    settings = Settings(models_dir=overrides.pop("models_dir", MODELS), **overrides)
    return TestClient(create_app(settings, warmup=warmup))


@contextmanager
def ready_client(**overrides) -> Iterator[TestClient]:
    """The app with these settings, started (lifespan run) and warmed up."""
    key = overrides.get("api_key")
    with make_client(**overrides) as c:
        _wait_ready(c, {"x-api-key": key} if key else {})
        yield c


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with ready_client() as c:
        yield c


def _wait_ready(c, headers: dict | None = None, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if c.get("/health/ready", headers=headers).status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError("service did not become ready")


@contextmanager
def running_server(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``python -m service ARGS`` as a real uvicorn process on 127.0.0.1; yields its base URL once ready."""
    port = free_port()
    cmd = [sys.executable, "-m", "service", "--models", str(MODELS), "--port", str(port), *args]
    server = ServerProcess(cmd, port, ROOT, env, timeout_s=90)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    # batching under concurrency is tested against it: warm-up tuning could make a model prefer batch 1
    with running_server(env={"CONVSERVE_MAX_QUEUE_DELAY_MS": "2", "CONVSERVE_BATCH_TUNE": "off"}) as base:
        yield base


@pytest.fixture
def models_copy(tmp_path: Path) -> Path:
    import shutil

    for name in ("lenet5_digits", "resnet20_digits"):
        shutil.copytree(MODELS / name, tmp_path / name)
    return tmp_path
