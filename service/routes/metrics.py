"""GET /metrics in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from service.deps import MetricsDep, RegistryDep, require_api_key_for_metrics

router = APIRouter(tags=["metrics"], dependencies=[Depends(require_api_key_for_metrics)])


@router.get("/metrics", response_class=Response)
async def metrics(registry: RegistryDep, m: MetricsDep) -> Response:
    """Request counts, latencies, queue and inference times, batch sizes, queue lengths."""
    for state in registry.all_states():
        queued = getattr(state.batcher, "queued_rows", None)  # in-process batchers; the engine reports its own
        if queued is not None:
            m.queue_length.labels(state.name, str(state.version)).set(queued)
    return Response(m.render(), media_type=CONTENT_TYPE_LATEST)
