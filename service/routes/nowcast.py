"""POST /nowcast: the next hour of radar reflectivity (or rain rate) from the latest frames."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Literal

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from modelrepo.radar_io import OPERA_GAIN, OPERA_NODATA, OPERA_OFFSET, RadarFrames, frames_from_json, read_frames
from service.batcher import timings_ms
from service.deps import begin
from service.errors import ApiError
from service.inputs import read_body
from service.routes.common import guarded, version_query
from service.schemas import ERROR_RESPONSES
from service.tasks import nowcast as task

router = APIRouter(tags=["nowcast"])

MAX_FILES = 64
RAW_TYPES = {
    "application/octet-stream",
    "application/x-npy",
    "application/x-npz",
    "application/x-hdf5",
    "application/x-hdf",
    "application/x-netcdf",
    "application/netcdf",
    "image/png",
}
MEDIA = {
    "npz": "application/x-npz",
    "netcdf": "application/x-netcdf",
    "png": "image/png",
    "gif": "image/gif",
}

BODY = {
    "requestBody": {
        "required": True,
        "description": "At least 3 frames, oldest first (the last 3 are used).",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "description": "Any field names: files are ordered by field name (frame1 < frame2 < frame10), "
                    "by the `order` parameter, or by the times inside them (ODIM, NetCDF, TIFF). Each file: .npy/.npz "
                    "(T, H, W) or (H, W), a gray PNG (dBZ = png_gain * v + png_offset), ODIM HDF5, NetCDF or GeoTIFF.",
                    "additionalProperties": {"type": "string", "format": "binary"},
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["frames"],
                    "properties": {
                        "frames": {
                            "type": "array",
                            "description": "[T][H][W] numbers in input_unit; null = no data",
                            "items": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                        },
                        "timestep_minutes": {"type": "number"},
                        "unit": {"type": "string", "enum": ["dBZ", "mm/h"]},
                        "timestamps": {"type": "array", "items": {"type": "string", "format": "date-time"}},
                        "metadata": {"type": "object", "description": "georeferencing, echoed back"},
                    },
                },
                "example": {"frames": [[[5, 12.5], [30, 41]], [[5, 14], [31, 40]], [[5, 15], [33, 42]]]},
            },
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary", "description": "one .npy/.npz/HDF5/NetCDF/TIFF file"}
            },
        },
    }
}


async def read_request(
    request: Request, input_unit: str, order: str | None, png: tuple[float, float, float]
) -> RadarFrames:
    body = await read_body(
        request, MAX_FILES, RAW_TYPES.__contains__,
        'multipart/form-data (files), application/json ({"frames": ...}) or one file as application/octet-stream',
    )  # fmt: skip
    if body.kind == "multipart":
        uploads = body.files
        if not uploads:
            raise ApiError(400, "no_frames", "the multipart body holds no file")
        if order:
            wanted = [s.strip() for s in order.split(",") if s.strip()]
            rank = {name: i for i, name in enumerate(wanted)}
            missing = [v.filename or k for k, v in uploads if (v.filename not in rank and k not in rank)]
            if missing:
                raise ApiError(422, "invalid_order", f"`order` does not name {missing}")
            uploads.sort(key=lambda kv: rank.get(kv[1].filename or "", rank.get(kv[0], 0)))
        else:
            uploads.sort(key=lambda kv: task.natural_key(kv[0]))  # stable: same field names keep their order
        files = [(v.filename or k, await v.read()) for k, v in uploads]
        return read_frames(files, input_unit, *png)
    if body.kind == "json":
        if not isinstance(body.payload, dict):
            raise ApiError(422, "no_frames", 'JSON body must be an object with "frames"')
        return frames_from_json(body.payload, input_unit)
    if not body.raw:
        raise ApiError(400, "no_frames", "empty request body")
    return read_frames([("body", body.raw)], input_unit, *png)


def _file_bytes(output: str, card, p, radar, fc: np.ndarray, fc_dbz: np.ndarray, leads: list[int], unit: str):
    """The forecast as an npz, NetCDF, PNG strip or GIF animation."""
    if output == "npz":
        meta = {"georef": radar.georef, "verification": task.verification_summary(card), "zr": list(p.zr)}
        meta["model"] = card.name
        return task.npz_bytes(fc, leads, p.nodata, unit, meta, task.no_rain_value(p, unit))
    if output == "netcdf":
        return task.netcdf_bytes(fc, leads, unit, p, radar.georef, card)
    last = p.dbz[-1].copy()
    last[p.nodata] = float("nan")
    pics = task.picture_frames(last, fc_dbz, leads)
    return task.png_strip(pics) if output == "png" else task.gif_bytes(pics)


def _json_body(state, card, p, radar, fc: np.ndarray, leads: list[int], unit: str) -> dict:
    spec = card.radar
    ref = p.reference_time
    return {
        "model": {"name": state.name, "version": state.version, "provider": state.provider},
        "unit": unit,
        "lead_times_minutes": leads,
        "timestep_minutes": p.timestep_minutes,
        "reference_time": ref.isoformat() if ref else None,
        "valid_times": [(ref + timedelta(minutes=m)).isoformat() for m in leads] if ref else None,
        "shape": list(fc.shape[1:]),
        "frames": task.json_frames(fc),
        "nodata_mask": p.nodata.astype(int).tolist() if p.nodata.any() else None,
        "no_rain_value": task.no_rain_value(p, unit),
        "no_rain_source": p.no_rain_source,
        "zr": {"a": p.zr[0], "b": p.zr[1], "source": p.zr_source},
        "georef": radar.georef,
        "input": {"frames_received": p.frames_received, "frames_used": spec.frames_in, "formats": radar.formats},
        "verification": task.verification_summary(card),
        "warnings": p.warnings,
    }


@router.post(
    "/nowcast",
    responses=ERROR_RESPONSES
    | {
        200: {
            "description": "json: lead times, frames and the model's verification; npz / netcdf (CF, dims time, y, "
            "x; time = seconds since the last observation); png: a strip; gif: an animation",
            "content": {"application/json": {}, **{m: {} for m in MEDIA.values()}},
        }
    },
    openapi_extra=BODY,
)
async def nowcast(
    request: Request,
    model: str | None = Query(None, description="model name; default: the ready nowcaster"),
    version: int | None = version_query(),
    steps: int | None = Query(None, ge=1, description="lead times to forecast, 1..the model's max (default: all)"),
    output: Literal["json", "npz", "netcdf", "png", "gif"] = Query("json"),
    input_unit: Literal["dBZ", "mm/h"] = Query("dBZ", description="unit of unlabelled frames (npy, JSON)"),
    output_unit: Literal["dBZ", "mm/h"] | None = Query(None, description="default: the input's unit"),
    zr_a: float | None = Query(None, gt=0, description="Z = a R^b; default: the file's own, else 200"),
    zr_b: float | None = Query(None, gt=0, description="default: the file's own, else 1.6"),
    nodata: float | None = Query(None, description="value marking pixels without data (NaN always does)"),
    timestep_minutes: float | None = Query(None, gt=0, description="minutes between frames, if the input lacks times"),
    order: str | None = Query(None, description="comma-separated file (or field) names, oldest first"),
    png_gain: float = Query(OPERA_GAIN, description="PNG frames: dBZ = png_gain * value + png_offset"),
    png_offset: float = Query(OPERA_OFFSET),
    png_nodata: float = Query(OPERA_NODATA, description="PNG value meaning no data"),
    observed: bool = Query(False, description="json: also return the frames used as input (oldest first)"),
    no_rain: float | None = Query(
        None,
        description="dBZ meaning no rain in the input, kept in the forecast (default: the file's own, e.g. ODIM "
        "undetect, else the input's most common value below the rain threshold)",
    ),
) -> Response:
    """Forecast radar reflectivity (or rain rate) for the next hour from the latest three frames."""
    t0 = time.perf_counter()
    settings, state = begin(request, model, "nowcasting", version)
    card = state.card
    assert card is not None and card.radar is not None
    spec = card.radar
    if steps is not None and steps > spec.max_steps:
        raise ApiError(
            422,
            "too_many_steps",
            f"steps={steps}: model {card.name} is verified up to {spec.max_steps} steps "
            f"({spec.max_steps * spec.timestep_minutes:g} minutes)",
        )
    n_steps = steps or spec.max_steps
    radar = await read_request(request, input_unit, order, (png_gain, png_offset, png_nodata))
    p = task.prepare(radar, card, nodata, timestep_minutes, (zr_a, zr_b), settings.max_image_pixels, no_rain)
    t1 = time.perf_counter()
    timeout = settings.request_timeout_s
    fc_dbz, timing = await guarded(task.forecast(state, p, n_steps, timeout), timeout)
    unit = output_unit or p.unit_in
    fc = task.in_unit(fc_dbz, unit, p.zr, spec.rain_threshold)
    leads = [round(p.timestep_minutes * (i + 1)) for i in range(n_steps)]
    headers = {"X-Model": f"{state.name}/{state.version}", "X-Lead-Times-Minutes": ",".join(map(str, leads))}
    headers["X-No-Rain-Value"] = f"{task.no_rain_value(p, unit):g}"
    headers |= {"X-Warning": p.warnings[0]} if p.warnings else {}
    if output != "json":
        data = _file_bytes(output, card, p, radar, fc, fc_dbz, leads, unit)
        return Response(data, media_type=MEDIA[output], headers=headers)
    body = _json_body(state, card, p, radar, fc, leads, unit) | {"timings": timings_ms(t0, t1, timing)}
    if observed:
        obs = task.in_unit(p.dbz, unit, p.zr, spec.rain_threshold)
        body["observed"] = {
            "lead_times_minutes": [-round(p.timestep_minutes * i) for i in reversed(range(len(obs)))],
            "frames": task.json_frames(obs),
        }
    return JSONResponse(body, headers=headers)
