"""POST /preview: any image the endpoints accept, as an 8-bit PNG a browser can show.

Browsers show PNG, JPEG, GIF and WebP, but not TIFF (16-bit fluorescence, float32, multi-page stacks) nor,
in Chromium, HEIC - the files microscopes and phones write. The web page asks for this preview when it cannot
draw an upload itself, so the user sees what they sent. Decoded as ``/denoise`` decodes (``service.tasks.denoise``:
first page, upright, 16-bit and float kept); deeper than 8 bits, the image is stretched between its 0.1st and
99.9th percentiles (as Fiji's auto contrast), all colour planes alike, or to a range the caller gives (a result
shown as its input was); large images shrink to ``max_side``.
"""

from __future__ import annotations

import io

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from PIL import Image

from service.deps import require_api_key
from service.errors import ApiError
from service.images import open_image
from service.inputs import read_images
from service.routes.common import BODY
from service.schemas import ERROR_RESPONSES
from service.tasks.denoise import Decoded, decode

router = APIRouter(tags=["preview"], dependencies=[Depends(require_api_key)])


def display(d: Decoded, max_side: int, window: tuple[float, float] | None = None) -> tuple[Image.Image, tuple]:
    """The decoded image as 8-bit gray or RGB, at most ``max_side``, and the range of file values shown from
    black to white: ``window`` when given, else all of an 8-bit image's and the 0.1-99.9th percentiles of a
    deeper one's."""
    offset, span = d.units()
    if window is not None:
        lo, hi = ((w - offset) / span for w in window)
    elif d.dtype == np.uint8:
        lo, hi = 0.0, 1.0
    else:
        lo, hi = (float(v) for v in np.percentile(d.x, (0.1, 99.9)))
    x = np.clip((d.x - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    a = (x * 255 + 0.5).astype(np.uint8)
    img = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return img, (offset + lo * span, offset + hi * span)


@router.post(
    "/preview",
    responses=ERROR_RESPONSES | {200: {"description": "an 8-bit PNG for display", "content": {"image/png": {}}}},
    openapi_extra=BODY,
)
async def preview(
    request: Request,
    max_side: int = Query(1024, ge=16, le=4096, description="longest side of the preview (px)"),
    low: float | None = Query(None, description="file value shown as black (with high; default: the stretch)"),
    high: float | None = Query(None, description="file value shown as white (e.g. another preview's X-Display-Range)"),
) -> Response:
    """One image (16-bit / float / multi-page TIFF, HEIC, AVIF, ... - whatever the endpoints read) as an 8-bit
    PNG: first page, upright, stretched to its 0.1-99.9th percentiles when deeper than 8 bits, or to the range
    ``low``-``high`` (to show a result as its input was shown). For display only; the endpoints always read the
    file as sent. ``X-Display-Range``: the file values shown as black and white."""
    if (low is None) != (high is None) or (low is not None and not (np.isfinite([low, high]).all() and low < high)):
        raise ApiError(422, "invalid_request", "query.low and query.high: give both, finite, low below high")
    blobs = await read_images(request, 1)
    d = decode(blobs[0], request.app.state.settings.max_image_pixels, open_image)
    img, (lo, hi) = display(d, max_side, None if low is None else (low, high))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    headers = {"X-Pages": str(d.pages), "X-Source-Format": d.fmt, "X-Source-Dtype": str(np.dtype(d.dtype))}
    headers["X-Display-Range"] = f"{lo:.6g},{hi:.6g}"
    return Response(buf.getvalue(), media_type="image/png", headers=headers)
