"""The Open Inference Protocol v2 (KServe / Triton REST), so tritonclient, KServe clients and
perf_analyzer work unchanged: server and model metadata, health, readiness and ``infer`` (JSON
tensors and Triton's binary tensor data extension) through the same dynamic batcher as the task
endpoints. Errors are ``{"error": "..."}`` (``service/errors.py``)."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Depends, Request, Response

from service import __version__
from service.deps import RegistryDep, check_api_key, pick_version, require_api_key, require_api_key_for_health
from service.errors import ApiError
from service.registry import ModelState
from service.routes.common import guarded
from service.v2 import encode_response, parse_infer

router = APIRouter(prefix="/v2", tags=["v2 (Open Inference Protocol)"])
HEADER = "Inference-Header-Content-Length"


def _dims(dims: list) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in dims]


def _model(registry, name: str, version: str | None) -> ModelState:
    """The model at the path's version (default: its latest served one); 404 otherwise."""
    state = registry.models.get(name)
    if state is None or state.card is None:
        raise ApiError(404, "model_not_found", f"unknown model {name!r}")
    if version is None:
        return state
    if not (version.isascii() and version.isdigit()):
        raise ApiError(404, "version_not_found", f"model {name!r}: version {version!r} is not a version number")
    return pick_version(registry, name, int(version))


def _shapes(state: ModelState) -> tuple[list[int], list[int]]:
    card = state.card
    assert card is not None
    spec = card.input
    return [-1, spec.tensor_channels, *_dims([spec.height, spec.width])], [-1, *_dims(card.output.shape)]


@router.get("")
async def server_metadata() -> dict:
    return {"name": "convserve", "version": __version__, "extensions": ["binary_tensor_data"]}


@router.get("/health/live", dependencies=[Depends(require_api_key_for_health)])
async def live() -> Response:
    return Response(status_code=200)


@router.get("/health/ready", dependencies=[Depends(require_api_key_for_health)])
async def ready(registry: RegistryDep) -> Response:
    return Response(status_code=200 if registry.ready else 400)


# Each route comes twice, without and with /versions/{version}: one function per path, so the
# unversioned path takes no stray ``version`` query parameter.


@router.get("/models/{name}", dependencies=[Depends(require_api_key)])
async def model_metadata(name: str, registry: RegistryDep) -> dict:
    return _metadata(registry, name, None)


@router.get("/models/{name}/versions/{version}", dependencies=[Depends(require_api_key)])
async def model_version_metadata(name: str, version: str, registry: RegistryDep) -> dict:
    return _metadata(registry, name, version)


def _metadata(registry, name: str, version: str | None) -> dict:
    state = _model(registry, name, version)
    inp, out = _shapes(state)
    return {
        "name": name,
        "versions": [str(v) for v in registry.served_versions(name)],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": state.card.input.name, "datatype": "FP32", "shape": inp}],
        "outputs": [{"name": state.card.output.name, "datatype": "FP32", "shape": out}],
    }


@router.get("/models/{name}/ready", dependencies=[Depends(require_api_key)])
async def model_ready(name: str, registry: RegistryDep) -> Response:
    return Response(status_code=200 if _model(registry, name, None).ready else 400)


@router.get("/models/{name}/versions/{version}/ready", dependencies=[Depends(require_api_key)])
async def model_version_ready(name: str, version: str, registry: RegistryDep) -> Response:
    return Response(status_code=200 if _model(registry, name, version).ready else 400)


def _input_array(state: ModelState, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The one input tensor, checked against the model's (name, rank, channels, fixed sizes), as float32."""
    inp, _ = _shapes(state)
    name = state.card.input.name
    if set(inputs) != {name}:
        raise ApiError(400, "invalid_input", f"model {state.name} takes one input {name!r}; got {sorted(inputs)}")
    x = inputs[name]
    if x.dtype == object:
        raise ApiError(400, "invalid_input", f"input {name!r} is FP32; BYTES cannot be used")
    if x.ndim != len(inp) or x.shape[0] < 1 or any(d not in (-1, s) for d, s in zip(inp[1:], x.shape[1:])):
        raise ApiError(400, "invalid_input", f"input {name!r}: shape {list(x.shape)} does not fit {inp}")
    m = state.card.input.pad_multiple
    if m > 1 and any(s % m for s in x.shape[2:]):
        raise ApiError(400, "invalid_input", f"input {name!r}: height and width must be multiples of {m} (pad them)")
    return np.ascontiguousarray(x, dtype=np.float32)


@router.post("/models/{name}/infer")
async def infer(name: str, request: Request, registry: RegistryDep) -> Response:
    """Run the model's latest served version on the request's tensor (JSON data or binary)."""
    return await _infer(name, None, request, registry)


@router.post("/models/{name}/versions/{version}/infer")
async def infer_version(name: str, version: str, request: Request, registry: RegistryDep) -> Response:
    """Run that version of the model on the request's tensor (JSON data or binary)."""
    return await _infer(name, version, request, registry)


async def _infer(name: str, version: str | None, request: Request, registry) -> Response:
    """Batched with every other caller of the same model version."""
    settings = request.app.state.settings
    check_api_key(request, settings)
    state = _model(registry, name, version)
    request.state.model, request.state.model_version = name, str(state.version)
    if not state.ready or state.batcher is None:
        raise ApiError(
            400 if state.status == "unavailable" else 503, "model_not_ready", f"model {name!r} is {state.status}"
        )
    req = parse_infer(await request.body(), request.headers.get(HEADER))
    x = _input_array(state, req.inputs)
    out_name = state.card.output.name
    unknown = set(req.outputs) - {out_name}
    if unknown:
        raise ApiError(400, "invalid_output", f"model {name!r} has no output {sorted(unknown)} (it has {out_name!r})")
    y, _ = await guarded(state.batcher.infer(x, settings.request_timeout_s), settings.request_timeout_s)
    binary = req.outputs.get(out_name, req.binary_output)
    body, header_length = encode_response(name, state.version, req.id, {out_name: (np.asarray(y, np.float32), binary)})
    if header_length is None:
        return Response(body, media_type="application/json")
    return Response(body, media_type="application/octet-stream", headers={HEADER: str(header_length)})
