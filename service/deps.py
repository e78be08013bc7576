"""FastAPI dependencies as ``Annotated`` aliases."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from service.errors import ApiError
from service.metrics import ServiceMetrics
from service.registry import ModelRegistry, ModelState
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]


def check_api_key(request: Request, settings: Settings) -> None:
    """With CONVSERVE_API_KEY set, require it as ``X-API-Key`` or ``Authorization: Bearer``."""
    if settings.api_key is None:
        return
    given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not given or not hmac.compare_digest(given, settings.api_key):
        raise ApiError(
            401, "unauthorized", "missing or wrong API key (X-API-Key header)", {"WWW-Authenticate": "Bearer"}
        )


async def require_api_key(request: Request, settings: SettingsDep) -> None:
    """The same check as a router dependency (for the routes off the hot path)."""
    check_api_key(request, settings)


async def require_api_key_for_health(request: Request, settings: SettingsDep) -> None:
    """Health probes: open unless CONVSERVE_HEALTH_OPEN=false."""
    if not settings.health_open:
        check_api_key(request, settings)


async def require_api_key_for_metrics(request: Request, settings: SettingsDep) -> None:
    """/metrics: behind the key unless CONVSERVE_METRICS_OPEN=true."""
    if not settings.metrics_open:
        check_api_key(request, settings)


def resolve_model(
    request: Request,
    registry: ModelRegistry,
    name: str | None,
    task: str,
    channels: int | None = None,
    version: int | None = None,
) -> ModelState:
    """The named model (or the task's default, preferring ``channels`` input channels) at ``version``
    (default: its latest served version), ready to serve; 404/400/503 otherwise."""
    if name is None and task == "classification":
        name = request.app.state.settings.default_classifier  # None: the best by the cards' headline metric
    if name is None:
        state = registry.default_model(task, channels)
        if state is None:
            raise ApiError(503, "no_model", f"no {task} model is ready", {"Retry-After": "5"})
    else:
        state = registry.models.get(name)
        if state is None and not registry.loaded:  # e.g. a worker waiting for a restarted engine
            raise ApiError(503, "not_ready", "the models are not loaded yet", {"Retry-After": "5"})
        if state is None:
            raise ApiError(404, "model_not_found", f"unknown model {name!r}; GET /models lists them")
        if state.card is not None and state.card.task != task:
            raise ApiError(400, "wrong_task", f"model {name!r} is a {state.card.task} model, not {task}")
    if version is not None and version != state.version:
        state = pick_version(registry, state.name, version)
    check_ready(state)
    request.state.model = state.name
    request.state.model_version = str(state.version)
    return state


def pick_version(registry: ModelRegistry, name: str, version: int) -> ModelState:
    """One served version of a model; 404 naming the served ones otherwise."""
    state = registry.get(name, version)
    if state is None:
        served = ", ".join(map(str, registry.served_versions(name))) or "none"
        raise ApiError(404, "version_not_found", f"model {name!r} has no served version {version} (served: {served})")
    return state


def check_ready(state: ModelState) -> None:
    """503 (with Retry-After while it warms up) unless the model version is ready."""
    if state.status == "unavailable":
        raise ApiError(503, "model_unavailable", f"model {state.name!r} is unavailable: {state.reason}")
    if not state.ready:
        raise ApiError(503, "model_not_ready", f"model {state.name!r} is {state.status}", {"Retry-After": "2"})


def begin(request: Request, model: str | None, task: str, version: int | None = None) -> tuple[Settings, ModelState]:
    """A task route's first step: the settings, the API key checked, the model resolved (or 4xx/503)."""
    settings = request.app.state.settings
    check_api_key(request, settings)
    return settings, resolve_model(request, request.app.state.registry, model, task, version=version)
