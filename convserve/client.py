"""A Python client for ConvServe's task endpoints (httpx; sync ``Client`` and async ``AsyncClient``).

    from convserve.client import Client
    with Client("http://127.0.0.1:8000") as c:
        c.classify("digit.png")[0].label           # '7'
        c.segment("cells.tif", labels=True).labels # (H, W) instance labels, numpy
        c.denoise("noisy.png").image               # PIL image, same bit depth
        c.nowcast(frames, timestep_minutes=6).frames  # (10, H, W) dBZ, with lead times

Inputs are file paths, bytes, PIL images or numpy arrays. A 503 (queue full, warming up) is retried
after the server's ``Retry-After``; any other error raises ``ConvServeError`` with the server's
error code, message and request id.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

Input = str | Path | bytes | Image.Image | np.ndarray


class ConvServeError(Exception):
    """An error answer from the server."""

    def __init__(self, status: int, code: str, message: str, request_id: str | None) -> None:
        super().__init__(f"{status} {code}: {message} (request {request_id})")
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


@dataclass
class Prediction:
    label: str
    index: int
    score: float


@dataclass
class Classification:
    predictions: list[Prediction]
    warnings: list[str]
    reliable: bool
    raw: dict = field(repr=False)

    @property
    def label(self) -> str:
        return self.predictions[0].label


@dataclass
class Segmentation:
    classes: np.ndarray  # (H, W) class index per pixel
    objects: list[dict]  # label, area, centroid, bbox, mean intensity
    labels: np.ndarray | None  # (H, W) instance labels (``labels=True``)
    warnings: list[str]
    raw: dict = field(repr=False)


@dataclass
class Denoised:
    image: Image.Image
    sigma_used: float
    sigma_estimated: float | None
    warnings: list[str]
    ensemble: int = 1  # flipped / rotated passes averaged
    noise_model: dict | None = None  # {"kind": "gaussian"} or the fitted Poisson-Gaussian model
    pixel_shuffle: int = 1  # 2: denoised on the 2 x 2 pixel-shuffled sub-images (pd=True)


@dataclass
class Forecast:
    frames: np.ndarray  # (steps, H, W) in ``unit``, NaN = no data
    lead_times_minutes: list[int]
    unit: str
    no_rain_value: float
    warnings: list[str]
    raw: dict = field(repr=False)


def _image_bytes(x: Input) -> tuple[str, bytes]:
    if isinstance(x, str | Path):
        return Path(x).name, Path(x).read_bytes()
    if isinstance(x, bytes):
        return "image", x
    if isinstance(x, np.ndarray):
        x = Image.fromarray(x)
    buf = io.BytesIO()
    x.save(buf, format="TIFF" if x.mode.startswith(("I", "F")) else "PNG")
    return "image." + ("tif" if x.mode.startswith(("I", "F")) else "png"), buf.getvalue()


def _files(images: list[Input]) -> list[tuple[str, tuple[str, bytes]]]:
    field_name = "files" if len(images) > 1 else "file"
    return [(field_name, _image_bytes(x)) for x in images]


def _params(**kw: Any) -> dict:
    return {k: v for k, v in kw.items() if v is not None}


def _frames_request(frames: np.ndarray | list[Input]) -> dict:
    if isinstance(frames, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, frames.astype(np.float32), allow_pickle=False)
        return {"content": buf.getvalue(), "headers": {"content-type": "application/octet-stream"}}
    return {"files": [(f"frame{i}", _image_bytes(f)) for i, f in enumerate(frames)]}


def _classification(body: dict) -> list[Classification]:
    return [
        Classification([Prediction(**p) for p in r["predictions"]], r.get("warnings", []), r.get("reliable", True), r)
        for r in body["results"]
    ]


def _segmentation(body: dict, labels_tiff: bytes | None) -> Segmentation:
    classes = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask_png"]))))
    labels = None
    if labels_tiff is not None:
        import tifffile

        labels = tifffile.imread(io.BytesIO(labels_tiff))
    return Segmentation(classes, body["objects"], labels, body.get("warnings", []), body)


def _denoised(body: dict) -> Denoised:
    image = Image.open(io.BytesIO(base64.b64decode(body["image"])))
    return Denoised(
        image,
        body["sigma_used"],
        body["sigma_estimated"],
        body.get("warnings", []),
        body.get("ensemble", 1),
        body.get("noise_model"),
        body.get("pixel_shuffle", 1),
    )


def _forecast(body: dict) -> Forecast:
    frames = np.array(body["frames"], dtype=np.float64).astype(np.float32)  # null -> NaN
    return Forecast(
        frames, body["lead_times_minutes"], body["unit"], body["no_rain_value"], body.get("warnings", []), body
    )


@dataclass
class _Op:
    """One client call: the HTTP requests it makes and how their answers become its result."""

    calls: list[tuple[str, str, dict]]
    parse: Callable[[list[httpx.Response]], Any]


def classify_op(images: Input | list[Input], model: str | None, top_k: int, explain: str | None) -> _Op:
    batch = images if isinstance(images, list) else [images]
    params = _params(model=model, top_k=top_k, explain=explain)
    return _Op(
        [("POST", "/classify", {"params": params, "files": _files(batch)})], lambda r: _classification(r[0].json())
    )


def segment_op(image: Input, model: str | None, diameter, labels: bool, channel=None, invert: bool = False) -> _Op:
    files = _files([image])
    params = _params(model=model, diameter=diameter, channel=channel, invert="true" if invert else None)
    calls = [("POST", "/segment", {"params": params, "files": files})]
    if labels:
        calls.append(("POST", "/segment", {"params": params | {"output": "labels"}, "files": files}))
    return _Op(calls, lambda r: _segmentation(r[0].json(), r[1].content if labels else None))


def denoise_op(
    image: Input,
    model: str | None,
    sigma: float | None,
    ensemble: int | None = None,
    noise: str | None = None,
    pd: bool | None = None,
) -> _Op:
    pd_query = None if pd is None else str(bool(pd)).lower()
    params = _params(model=model, sigma=sigma, ensemble=ensemble, noise=noise, pd=pd_query, output="json")
    return _Op([("POST", "/denoise", {"params": params, "files": _files([image])})], lambda r: _denoised(r[0].json()))


def nowcast_op(frames, timestep_minutes, model, steps, params: dict) -> _Op:
    query = _params(model=model, steps=steps, timestep_minutes=timestep_minutes, **params)
    return _Op([("POST", "/nowcast", {"params": query, **_frames_request(frames)})], lambda r: _forecast(r[0].json()))


def _raise_for(r: httpx.Response) -> None:
    if r.is_success:
        return
    try:
        err = r.json()["error"]
        code, message = (err["code"], err["message"]) if isinstance(err, dict) else ("error", str(err))
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", r.text[:200]
    raise ConvServeError(r.status_code, code, message, r.headers.get("x-request-id"))


def _retry_after(r: httpx.Response, attempt: int) -> float:
    try:
        return min(30.0, float(r.headers.get("retry-after", "")))
    except ValueError:
        return min(30.0, 0.5 * 2**attempt)


class _Base:
    def __init__(self, base_url: str, api_key: str | None, timeout: float, retries: int) -> None:
        self.base_url, self.retries = base_url.rstrip("/"), retries
        self._kw = {"base_url": self.base_url, "timeout": timeout, "headers": {"X-API-Key": api_key} if api_key else {}}


class Client(_Base):
    """Synchronous client. ``retries``: how many times a 503 is retried (after ``Retry-After``)."""

    def __init__(
        self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, timeout: float = 60, retries: int = 3
    ) -> None:
        super().__init__(base_url, api_key, timeout, retries)
        self._http = httpx.Client(**self._kw)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, kw: dict) -> httpx.Response:
        for attempt in range(self.retries + 1):
            r = self._http.request(method, path, **kw)
            if r.status_code != 503 or attempt == self.retries:
                break
            time.sleep(_retry_after(r, attempt))
        _raise_for(r)
        return r

    def _run(self, op: _Op):
        return op.parse([self._call(*c) for c in op.calls])

    def ready(self) -> bool:
        return self._http.get("/health/ready").status_code == 200

    def models(self) -> list[dict]:
        return self._call("GET", "/models", {}).json()["models"]

    def classify(self, images: Input | list[Input], model=None, top_k: int = 5, explain=None) -> list[Classification]:
        return self._run(classify_op(images, model, top_k, explain))

    def segment(
        self, image: Input, model=None, diameter: float | None = None, labels: bool = False, channel=None, invert=False
    ) -> Segmentation:
        """``channel``: red | green | blue | a 0-based index - the channel with the cells; ``invert``: dark cells
        on a bright background (README's /segment)."""
        return self._run(segment_op(image, model, diameter, labels, channel, invert))

    def denoise(
        self, image: Input, model: str | None = None, sigma: float | None = None, ensemble=None, noise=None, pd=None
    ) -> Denoised:
        """``noise``: gaussian (the default) | poisson | auto; ``pd=True``: camera noise (pixel-shuffled) - see
        the README's /denoise row."""
        return self._run(denoise_op(image, model, sigma, ensemble, noise, pd))

    def nowcast(self, frames, timestep_minutes=None, model=None, steps=None, **params: Any) -> Forecast:
        """``frames``: an array (T, H, W) (sent as .npy) or a list of files (ODIM, NetCDF, PNG...)."""
        return self._run(nowcast_op(frames, timestep_minutes, model, steps, params))


class AsyncClient(_Base):
    """The same methods as ``Client``, awaitable."""

    def __init__(
        self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, timeout: float = 60, retries: int = 3
    ) -> None:
        super().__init__(base_url, api_key, timeout, retries)
        self._http = httpx.AsyncClient(**self._kw)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, kw: dict) -> httpx.Response:
        for attempt in range(self.retries + 1):
            r = await self._http.request(method, path, **kw)
            if r.status_code != 503 or attempt == self.retries:
                break
            await asyncio.sleep(_retry_after(r, attempt))
        _raise_for(r)
        return r

    async def _run(self, op: _Op):
        return op.parse([await self._call(*c) for c in op.calls])

    async def ready(self) -> bool:
        return (await self._http.get("/health/ready")).status_code == 200

    async def models(self) -> list[dict]:
        return (await self._call("GET", "/models", {})).json()["models"]

    async def classify(self, images: Input | list[Input], model=None, top_k: int = 5, explain=None):
        return await self._run(classify_op(images, model, top_k, explain))

    async def segment(self, image: Input, model=None, diameter=None, labels=False, channel=None, invert=False):
        return await self._run(segment_op(image, model, diameter, labels, channel, invert))

    async def denoise(
        self, image: Input, model: str | None = None, sigma: float | None = None, ensemble=None, noise=None, pd=None
    ):
        return await self._run(denoise_op(image, model, sigma, ensemble, noise, pd))

    async def nowcast(self, frames, timestep_minutes=None, model=None, steps=None, **params: Any) -> Forecast:
        return await self._run(nowcast_op(frames, timestep_minutes, model, steps, params))
