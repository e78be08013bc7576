"""GET /models and /models/{name}: cards, readiness and the execution provider actually used."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.deps import RegistryDep, pick_version, require_api_key
from service.errors import ApiError
from service.routes.common import version_query
from service.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/models", tags=["models"], dependencies=[Depends(require_api_key)])


_EXAMPLE = {
    "name": "resnet20_digits",
    "version": 1,
    "versions": [1],
    "task": "classification",
    "status": "ready",
    "ready": True,
    "reason": None,
    "provider": "CPUExecutionProvider",
    "providers": ["CPUExecutionProvider"],
    "requested_providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "fallback": "CUDAExecutionProvider could not be initialised; running on CPUExecutionProvider",
    "warmup_ms": 12.3,
    "max_batch_size": 32,
    "preferred_batch_sizes": [],
    "io_binding": False,
    "batch_buckets": [],
    "architecture": "resnet20",
    "metrics": {"accuracy": 0.994444, "val_accuracy": 1.0},
}


def _example(body: dict) -> dict:
    return {200: {"content": {"application/json": {"example": body}}}}


@router.get("", responses=_example({"models": [_EXAMPLE], "defaults": {"classification": "resnet20_digits"}}))
async def list_models(registry: RegistryDep) -> dict:
    """Every model in the repository with its status, provider and headline metrics."""
    default = registry.default_model("classification")
    return {
        "models": [s.summary() | {"versions": registry.served_versions(s.name)} for s in registry.models.values()],
        "defaults": {"classification": default.name if default else None},
    }


@router.get("/{name}", responses={404: ERROR_RESPONSES[404]} | _example(_EXAMPLE | {"card": {"...": "card.json"}}))
async def get_model(name: str, registry: RegistryDep, version: int | None = version_query()) -> dict:
    """One model (at ``version``; default its latest served): its summary plus the whole card."""
    state = registry.models.get(name)
    if state is None:
        raise ApiError(404, "model_not_found", f"unknown model {name!r}; GET /models lists them")
    if version is not None:
        state = pick_version(registry, name, version)
    card = state.card.model_dump(mode="json") if state.card else None
    return state.summary() | {"versions": registry.served_versions(name), "card": card}
