"""Reading images from a request: multipart (``file`` / ``files``), a raw ``image/*`` body, or JSON base64."""

from __future__ import annotations

import base64
import binascii
import json

from starlette.datastructures import UploadFile
from starlette.requests import Request

from service.errors import ApiError

MULTIPART_FIELDS = ("file", "files")


def _b64(s: object, index: int) -> bytes:
    if not isinstance(s, str):
        raise ApiError(422, "invalid_base64", f"image {index} must be a base64 string")
    if s.startswith("data:"):
        s = s.partition(",")[2]  # data URL: data:image/png;base64,....
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "invalid_base64", f"image {index} is not valid base64") from None


async def read_images(request: Request, max_images: int) -> list[bytes]:
    """The request's images as bytes, in order. Raises ApiError 400/415/422."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        # one file over the limit is parsed so that our 413 names it; Starlette refuses far more with a 400
        form = await request.form(max_files=max_images + 1, max_fields=100)
        uploads = [v for k in MULTIPART_FIELDS for v in form.getlist(k) if isinstance(v, UploadFile)]
        if not uploads:
            raise ApiError(400, "no_image", "multipart body has no file in the 'file' or 'files' field")
        blobs = [await u.read() for u in uploads]
    elif ctype.startswith("image/") or ctype == "application/octet-stream":
        blobs = [await request.body()]
    elif ctype == "application/json":
        try:
            payload = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
        if not isinstance(payload, dict) or not ({"image", "images"} & payload.keys()):
            raise ApiError(422, "no_image", 'JSON body needs "image" (base64) or "images" (list of base64)')
        items = [payload["image"]] if "image" in payload else payload["images"]
        if not isinstance(items, list):
            raise ApiError(422, "no_image", '"images" must be a list of base64 strings')
        blobs = [_b64(s, i) for i, s in enumerate(items)]
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"content type {ctype or '(none)'} is not supported: send multipart/form-data, image/*, "
            "or application/json with base64",
        )
    if not blobs:
        raise ApiError(400, "no_image", "no image in the request")
    if len(blobs) > max_images:
        raise ApiError(413, "too_many_images", f"{len(blobs)} images in one request (limit {max_images})")
    return blobs
