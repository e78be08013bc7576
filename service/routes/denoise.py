"""POST /denoise."""

from __future__ import annotations

import base64
import time
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from modelrepo.ensemble import ENSEMBLES
from service.batcher import timings_ms
from service.deps import begin, resolve_model
from service.errors import ApiError
from service.images import open_image
from service.inputs import read_images
from service.routes.common import BODY, guarded, version_query
from service.schemas import ERROR_RESPONSES
from service.tasks import denoise as task

router = APIRouter(tags=["denoise"])

ENSEMBLE_QUERY = Query(
    None,
    description="geometric self-ensemble: the network runs on 1, 2, 4 or 8 flipped / rotated copies of the "
    "image and the answers are averaged (more is slower and a little better); default: the model card's",
)
NOISE_QUERY = Query(
    "gaussian",
    description="gaussian: one noise level (sigma, or estimated); poisson: photon noise, its level growing "
    "with the signal (fitted from the image, variance-stabilised); auto: poisson where the fit finds the "
    "noise mostly signal-dependent",
)
PD_QUERY = Query(
    False,
    description="camera noise: denoise the image's 2 x 2 pixel-shuffled sub-images (every other pixel) and "
    "interleave them back. A camera's demosaiced noise is spatially correlated and mostly survives a denoiser "
    "trained on white noise; two pixels apart it is close to white. Costs detail on white noise.",
)


def default_passes(card_passes: int, shape: tuple[int, ...], settings, warnings: list[str]) -> int:
    """The card's self-ensemble, or one pass for an image above ``denoise_ensemble_max_pixels`` (said in
    ``warnings``)."""
    pixels = shape[0] * shape[1]
    if card_passes > 1 and pixels > settings.denoise_ensemble_max_pixels:
        warnings.append(
            f"a large image ({pixels / 1e6:.1f} MP): one pass instead of the model's {card_passes}; "
            f"ask ensemble={card_passes} for the last fraction of a dB"
        )
        return 1
    return card_passes


def _headers(facts: dict) -> dict[str, str]:
    """What the JSON answer says, as headers of the image answers."""
    headers = {"X-Sigma-Used": f"{facts['sigma_used']:.3f}", "X-Ensemble": str(facts["ensemble"])}
    headers |= {"X-Model": f"{facts['model']['name']}/{facts['model']['version']}"}
    headers |= {"X-Denoised-As": facts["denoised_as"], "X-Noise-Model": facts["noise_model"]["kind"]}
    headers["X-Pixel-Shuffle"] = str(facts["pixel_shuffle"])
    if facts["sigma_estimated"] is not None:
        headers["X-Sigma-Estimated"] = f"{facts['sigma_estimated']:.3f}"
    if facts["warnings"]:
        headers["X-Warning"] = facts["warnings"][0]
    return headers


def _image_response(output: str, out, d: task.Decoded, headers: dict[str, str]) -> Response:
    """The denoised image as PNG (8-bit, 16-bit; with the upload's colour profile and EXIF) or TIFF (any depth;
    with its colour profile)."""
    if output == "tiff":
        return Response(task.tiff_bytes(out, d.icc), media_type="image/tiff", headers=headers)
    png = task.png_bytes(out, d.icc, d.exif)
    if png is None:
        raise ApiError(
            422, "png_unsupported", f"a {out.dtype} image with {out.shape} cannot be a PNG here; ask for output=tiff"
        )
    return Response(png, media_type="image/png", headers=headers)


@router.post(
    "/denoise",
    responses=ERROR_RESPONSES
    | {
        200: {
            "description": "png: the image in its own bit depth; tiff: the same as TIFF (any depth, float32 too); "
            "json: base64 image + noise levels",
            "content": {"image/png": {}, "image/tiff": {}, "application/json": {}},
        }
    },
    openapi_extra=BODY,
)
async def denoise_image(
    request: Request,
    model: str | None = Query(
        None, description="model name; default: the best ready denoiser for the image (colour or gray)"
    ),
    version: int | None = version_query(),
    sigma: float | None = Query(None, ge=0, le=255, description="noise level on the 0-255 scale; estimated if absent"),
    output: Literal["png", "tiff", "json"] = Query("png", description="png | tiff | json"),
    ensemble: int | None = ENSEMBLE_QUERY,
    noise: Literal["gaussian", "poisson", "auto"] = NOISE_QUERY,
    pd: bool = PD_QUERY,
) -> Response:
    """Remove Gaussian-like noise from one image, keeping its bit depth (8/16-bit, float32 TIFF) and alpha."""
    t0 = time.perf_counter()
    settings, state = begin(request, model, "denoising", version)
    blobs = await read_images(request, 1)
    d = task.decode(blobs[0], settings.max_image_pixels, open_image)
    if model is None:  # the default for this image: a colour model for colour, a gray one for gray
        state = resolve_model(
            request, request.app.state.registry, None, "denoising", 3 if d.x.shape[2] == 3 else 1, version
        )
    warnings = d.notes()
    plan = task.plan_noise(d.x, sigma, noise, d.lossy, task.shuffle_stride(pd, d.x.shape, warnings))
    warnings += plan.warnings
    if ensemble is not None and ensemble not in ENSEMBLES:
        raise ApiError(422, "invalid_request", f"query.ensemble: must be one of 1, 2, 4 or 8, got {ensemble}")
    passes = ensemble or default_passes(state.card.input.ensemble, d.x.shape, settings, warnings)
    t1 = time.perf_counter()
    s = settings
    # a colour model gets a gray image as three equal planes (modelrepo.denoising), a gray one each plane
    work = task.predict(state, d.x, plan, s.request_timeout_s, s.denoise_tile_size, s.denoise_tile_overlap, passes)
    y, timing = await guarded(work, s.request_timeout_s)
    out = task.restore(y, d)
    facts = {
        "sigma_used": round(plan.sigma_used, 3),
        "sigma_estimated": plan.sigma_estimated,
        "noise_measured_as": "lossy" if d.lossy else "lossless",
        "pixel_shuffle": plan.stride,
        "noise_model": plan.summary(),
        "ensemble": passes,
        "denoised_as": "rgb" if state.card.input.channels == 3 else "gray",
        "warnings": warnings,
        "model": {"name": state.name, "version": state.version, "provider": state.provider},
    }
    headers = _headers(facts)
    if output != "json":
        return _image_response(output, out, d, headers)
    png = task.png_bytes(out, d.icc, d.exif)
    body = {
        "image": base64.b64encode(png if png is not None else task.tiff_bytes(out, d.icc)).decode("ascii"),
        "format": "png" if png is not None else "tiff",
        "dtype": str(out.dtype),
        "shape": list(out.shape),
        **facts,
        "noise_before": task.noise_255(d.x, d.lossy, plan.stride),
        "noise_after": task.noise_255(y, d.lossy, plan.stride),
        "timings": timings_ms(t0, t1, timing),
    }
    return JSONResponse(body, headers=headers)
