"""POST /classify."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from service.batcher import timings_ms
from service.deps import begin
from service.inputs import read_images
from service.routes.common import BODY, guarded, version_query
from service.schemas import ERROR_RESPONSES, ClassifyResponse
from service.tasks import classify as task

# The hot path takes no FastAPI dependencies: solving them cost more per request than the whole
# LeNet-5 inference. Settings and registry come straight from app.state.
router = APIRouter(tags=["classify"])


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=BODY,
)
async def classify_images(
    request: Request,
    model: str | None = Query(None, description="model name; default: the best ready classifier"),
    version: int | None = version_query(),
    top_k: int = Query(5, ge=1, le=1000, description="how many classes per image"),
    explain: Literal["occlusion"] | None = Query(None, description="add an occlusion-sensitivity heat map"),
    invert: Literal["auto", "true", "false"] = Query(
        "auto",
        description="models trained on light ink on dark (the digits): auto detects dark ink on light paper and "
        "inverts it; true / false force it",
    ),
) -> JSONResponse:
    """Classify one or more images (multipart, raw image body, or JSON base64)."""
    t0 = time.perf_counter()
    settings, state = begin(request, model, "classification", version)
    blobs = await read_images(request, settings.max_images_per_request)
    x, pixels, notes = task.decode(blobs, state.card, settings.max_image_pixels, invert)
    t1 = time.perf_counter()
    logits, timing = await guarded(task.predict(state, x, settings.request_timeout_s), settings.request_timeout_s)
    framed = state.card.input.framing is not None
    results = [task.result(p, n, framed) for p, n in zip(task.encode(logits, state.card, top_k), notes)]
    explain_ms = None
    if explain == "occlusion":
        t2 = time.perf_counter()
        for i, r in enumerate(results):
            target = r["predictions"][0]["index"]
            r["explanation"] = await guarded(
                task.explain_occlusion(state, x[i], pixels[i], target, settings.request_timeout_s),
                settings.request_timeout_s,
            )
        explain_ms = round(1000 * (time.perf_counter() - t2), 3)
    timings = (
        timings_ms(t0, t1, timing)
        | {"batch_size": timing.batch_rows}
        | ({"explain_ms": explain_ms} if explain_ms is not None else {})
    )
    model_ref = {"name": state.name, "version": state.version, "provider": state.provider}
    # Built from plain dicts: FastAPI's response-model round trip cost about 1 ms per request;
    # the schema above still documents the shape in OpenAPI, and tests check it.
    warned = [w for r in results for w in r["warnings"]]
    headers = {"X-Warning": warned[0]} if warned else None
    return JSONResponse({"model": model_ref, "results": results, "timings": timings}, headers=headers)
