"""POST /segment."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from modelrepo.card import InputSpec
from service.batcher import timings_ms
from service.deps import begin
from service.errors import ApiError
from service.inputs import read_images
from service.routes.common import BODY, guarded, version_query
from service.schemas import ERROR_RESPONSES
from service.tasks import segment as task

router = APIRouter(tags=["segment"])

Output = Literal["json", "labels", "csv", "png", "overlay"]
_MEDIA = {"labels": "image/tiff", "csv": "text/csv", "png": "image/png", "overlay": "image/png"}


def _with_percentiles(spec: InputSpec, pmin: float | None, pmax: float | None) -> InputSpec:
    """The card's input spec with the request's normalisation percentiles, if any (422 if not ordered)."""
    if pmin is None and pmax is None:
        return spec
    lo, hi = pmin if pmin is not None else spec.percentiles[0], pmax if pmax is not None else spec.percentiles[1]
    if not lo < hi:
        raise ApiError(422, "invalid_request", f"pmin ({lo}) must be below pmax ({hi})")
    return spec.model_copy(update={"percentiles": (lo, hi)})


@router.post(
    "/segment",
    responses=ERROR_RESPONSES
    | {
        200: {
            "description": "json: summary + objects + base64 class mask; labels: instance TIFF; csv: object "
            "table; png: indexed class mask; overlay: image with coloured contours",
            "content": {"application/json": {}, "image/tiff": {}, "text/csv": {}, "image/png": {}},
        }
    },
    openapi_extra=BODY,
)
async def segment_image(
    request: Request,
    model: str | None = Query(None, description="model name; default: the best ready segmentation model"),
    version: int | None = version_query(),
    output: Output = Query("json", description="json | labels (TIFF) | csv | png | overlay"),
    min_size: int | None = Query(None, ge=0, le=10**8, description="drop objects smaller than this (pixels)"),
    pmin: float | None = Query(None, ge=0, le=100, description="lower normalisation percentile (card default)"),
    pmax: float | None = Query(None, ge=0, le=100, description="upper normalisation percentile (card default)"),
    diameter: float | None = Query(
        None,
        gt=0,
        le=10_000,
        description="typical cell diameter in pixels: cells outside the sizes the model segments at their own "
        "size (the card's diameter_native) are rescaled to its nearer end and the answer mapped back; absent: "
        "estimated by a scale search",
    ),
    channel: str | None = Query(
        None,
        max_length=8,
        description="which channel holds the cells: red | green | blue of a colour image, or a 0-based index "
        "(a colour band, or a page of a multi-page TIFF); default: a colour image's brightness, a multi-page "
        "file's first page (said in the warnings)",
    ),
    invert: bool = Query(False, description="dark cells on a bright background (brightfield, histology): invert first"),
) -> Response:
    """Segment one image (8- or 16-bit PNG/TIFF, JPEG, ...): classes per pixel, objects, measurements."""
    t0 = time.perf_counter()
    settings, state = begin(request, model, "segmentation", version)
    card = state.card
    spec = _with_percentiles(card.input, pmin, pmax)
    blobs = await read_images(request, 1)
    raw, notes = task.decode(blobs[0], settings.max_image_pixels, channel)
    t1 = time.perf_counter()
    tiling = (settings.segment_tile_size, settings.segment_tile_overlap)
    seen = task.inverted(raw) if invert else raw
    seg, timing = await guarded(
        task.predict(state, seen, spec, settings.request_timeout_s, *tiling, diameter, min_size),
        settings.request_timeout_s,
    )
    seg.warnings[:0] = notes
    task.hint_invert(seg.warnings, invert)
    classes, instances = seg.classes, seg.instances
    headers = _headers(seg, state)
    if output in ("labels", "png", "overlay"):
        return Response(_image_output(output, seg, raw, spec, card), media_type=_MEDIA[output], headers=headers)
    rows = task.measure_objects(instances, raw)
    if output == "csv":
        return Response(task.objects_csv(rows), media_type=_MEDIA[output], headers=headers)
    body = task.summary(classes, instances, rows, card) | {
        "diameter": _diameter(seg, card),
        "warnings": seg.warnings,
        "model": {"name": state.name, "version": state.version, "provider": state.provider},
        "timings": timings_ms(t0, t1, timing),
    }
    return JSONResponse(body, headers=headers)


def _diameter(seg, card) -> dict:
    return {
        "used": None if seg.diameter_used is None else round(seg.diameter_used, 2),
        "estimated": seg.diameter_estimated,
        "trained": card.output.diameter_px,
        "native": card.output.diameter_native,
        "scale": round(seg.scale, 4),
    }


def _headers(seg, state) -> dict[str, str]:
    headers = {"X-Objects": str(int(seg.instances.max())), "X-Model": f"{state.name}/{state.version}"}
    if seg.diameter_used is not None:
        headers["X-Diameter"] = f"{seg.diameter_used:.1f}"
    if seg.warnings:
        headers["X-Warning"] = seg.warnings[0]
    return headers


def _image_output(output: str, seg, raw, spec: InputSpec, card) -> bytes:
    """labels: the instance TIFF; png: the indexed class mask; overlay: the image with coloured contours."""
    if output == "labels":
        return task.labels_tiff(seg.instances)
    if output == "png":
        return task.class_png(seg.classes, card)
    return task.overlay_png(raw, seg.instances, spec)
