"""Liveness and readiness (no API key: orchestrators probe these)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from service.deps import RegistryDep, require_api_key_for_health
from service.errors import error_body

router = APIRouter(prefix="/health", tags=["health"], dependencies=[Depends(require_api_key_for_health)])


@router.get("/live", responses={200: {"content": {"application/json": {"example": {"status": "alive"}}}}})
async def live() -> dict:
    """The process is up and answering."""
    return {"status": "alive"}


_READY = {
    "status": "ready",
    "models": {
        "resnet20_digits": {"status": "ready", "reason": None, "provider": "CPUExecutionProvider", "fallback": None}
    },
}
_NOT_READY = {
    "error": {"code": "not_ready", "message": "warming up: resnet20_digits"},
    "status": "not_ready",
    "models": {
        "resnet20_digits": {"status": "warming", "reason": None, "provider": "CPUExecutionProvider", "fallback": None}
    },
}


@router.get(
    "/ready",
    responses={
        200: {"content": {"application/json": {"example": _READY}}},
        503: {
            "description": "not every loadable model is warm yet",
            "content": {"application/json": {"example": _NOT_READY}},
        },
    },
)
async def ready(registry: RegistryDep) -> JSONResponse:
    """200 once every loadable model is warmed up; 503 before, saying which are not and why."""
    models = {
        n: {"status": s.status, "reason": s.reason, "provider": s.provider, "fallback": s.fallback}
        for n, s in registry.models.items()
    }
    engine = getattr(registry, "engine_pid", None)  # --workers N: the inference engine process
    if registry.ready:
        return JSONResponse({"status": "ready", "models": models} | ({"engine": {"pid": engine}} if engine else {}))
    waiting = [n for n, s in registry.models.items() if s.status not in ("ready", "unavailable")]
    msg = "loading the model repository" if not registry.loaded else f"warming up: {', '.join(waiting) or 'starting'}"
    return JSONResponse(
        error_body("not_ready", msg) | {"status": "not_ready", "models": models},
        status_code=503,
        headers={"Retry-After": "2"},
    )
