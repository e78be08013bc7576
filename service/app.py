"""The FastAPI application: settings -> registry -> routes, with a lifespan that loads and warms models."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import __version__
from service.errors import install_error_handlers
from service.metrics import ServiceMetrics
from service.middleware import RequestContextMiddleware
from service.registry import ModelRegistry
from service.remote import RemoteRegistry
from service.routes import classify, denoise, health, metrics, models, nowcast, preview, segment, v2
from service.routes.pages import install_pages
from service.settings import Settings

log = logging.getLogger("convserve")

DESCRIPTION = """Serve convolutional networks from a Triton-compatible model repository with ONNX Runtime.

Every response carries `X-Request-ID`; every error is `{"error": {"code": ..., "message": ...}}`."""


def create_app(settings: Settings | None = None, warmup: bool = True) -> FastAPI:
    """Build the app. ``warmup=False`` leaves models loaded but not warmed (readiness tests)."""
    settings = settings or Settings()
    service_metrics = ServiceMetrics()
    # a front-end worker forwards to the engine process; otherwise sessions live in this process
    registry = RemoteRegistry(settings) if settings.engine_socket else ModelRegistry(settings, service_metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await registry.start(warmup)  # raises (start-up fails) if an explicitly requested provider is missing
        try:
            yield
        finally:
            await registry.aclose()

    # docs_url / redoc_url: served by routes/pages.py with local assets instead of a CDN
    offline_docs = {"docs_url": None, "redoc_url": None}
    app = FastAPI(title="ConvServe", version=__version__, description=DESCRIPTION, lifespan=lifespan, **offline_docs)
    app.state.settings = settings
    app.state.registry = registry
    app.state.metrics = service_metrics
    install_error_handlers(app)
    for r in (
        classify.router,
        segment.router,
        denoise.router,
        nowcast.router,
        models.router,
        health.router,
        metrics.router,
        v2.router,
        preview.router,
    ):
        app.include_router(r)
    install_pages(app, settings.examples_dir)
    if settings.cors_origins:  # off by default: the page at / is same-origin
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"], allow_headers=["*"]
        )
    app.add_middleware(
        RequestContextMiddleware,
        metrics=service_metrics,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
        body_deadline_s=settings.body_deadline_s,
    )
    return app


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn's worker processes (``--workers N``): settings come from the environment."""
    from service.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings)
