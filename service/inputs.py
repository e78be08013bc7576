"""Reading images from a request: multipart (``file`` / ``files``), a raw ``image/*`` body, or JSON base64."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from starlette.datastructures import UploadFile
from starlette.requests import Request

from service import multipart
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


@dataclass
class Body:
    """A request body by its kind: multipart files (field name, upload) in order, a JSON value, or raw bytes."""

    kind: Literal["multipart", "json", "raw"]
    files: list[tuple[str, UploadFile | multipart.Upload]] = field(default_factory=list)
    payload: object = None
    raw: bytes = b""


async def read_body(request: Request, max_files: int, raw: Callable[[str], bool], accepted: str) -> Body:
    """The one place request bodies are parsed: multipart, JSON, or a raw body of a content type that
    ``raw`` accepts; 400 for an empty or malformed body, 415 (naming ``accepted``) for any other type."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        fast = multipart.parse(await request.body(), request.headers["content-type"], max_files + 1)
        if fast is not None:
            return Body("multipart", files=fast)
        # one file over the limit is parsed so that the route's 413 names it; Starlette refuses more with a 400
        form = await request.form(max_files=max_files + 1, max_fields=max(100, max_files + 1))
        return Body("multipart", files=[(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile)])
    if ctype == "application/json":
        try:
            return Body("json", payload=json.loads(await request.body()))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
        except RecursionError:
            raise ApiError(400, "invalid_json", "request body is JSON nested too deeply") from None
    if raw(ctype):
        return Body("raw", raw=await request.body())
    raise ApiError(415, "unsupported_media_type", f"content type {ctype or '(none)'} is not supported: send {accepted}")


def _image_type(ctype: str) -> bool:
    return ctype.startswith("image/") or ctype == "application/octet-stream"


async def read_images(request: Request, max_images: int) -> list[bytes]:
    """The request's images as bytes, in order. Raises ApiError 400/415/422."""
    body = await read_body(
        request, max_images, _image_type, "multipart/form-data, image/*, or application/json with base64"
    )
    if body.kind == "multipart":
        uploads = [u for k in MULTIPART_FIELDS for name, u in body.files if name == k]
        if not uploads:
            raise ApiError(400, "no_image", "multipart body has no file in the 'file' or 'files' field")
        blobs = [await u.read() for u in uploads]
    elif body.kind == "raw":
        blobs = [body.raw]
    else:
        payload = body.payload
        if not isinstance(payload, dict) or not ({"image", "images"} & payload.keys()):
            raise ApiError(422, "no_image", 'JSON body needs "image" (base64) or "images" (list of base64)')
        items = [payload["image"]] if "image" in payload else payload["images"]
        if not isinstance(items, list):
            raise ApiError(422, "no_image", '"images" must be a list of base64 strings')
        blobs = [_b64(s, i) for i, s in enumerate(items)]
    if not blobs:
        raise ApiError(400, "no_image", "no image in the request")
    if len(blobs) > max_images:
        raise ApiError(413, "too_many_images", f"{len(blobs)} images in one request (limit {max_images})")
    return blobs
