"""What the task routes share: the image request body's OpenAPI description (with a real, working
example) and the mapping of the batcher's overload signals to HTTP answers."""

from __future__ import annotations

import logging

from fastapi import Query

from modelrepo.errors import InputError, plain
from service.batcher import QueueFullError
from service.errors import ApiError
from service.logs import request_id_var

log = logging.getLogger("convserve")

EXAMPLE_PNG = (  # a 28 x 28 white-on-black "7" (examples/digits, resized): a real, working request body
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAB0UlEQVR42jWSvYrWZxTEf3PmPK9ZjZAFJQiCUbuECMHONngPsbC3"
    "3MLCRi/Ci1hIkzKkSmcTUgSbkCAmgSwKZuMHu7rq+z5j8V9PO2dmGGbkiAg0BYqYRVIAqRQpCSRBETGpTAJegMnySwkEQUJNVEFI"
    "izzZKKqEYzTFZvLxTmyiKaTZAEW2rlw8e/rkKuPR7v8DFiu6q73iXjLfHfz37FX+vsEou+2m3d1d3/x898Ln26dPbe+s989rDJdt"
    "erTdvdgJ2M0OK4+23YHpqCsiUb3/PZeRgqIWcoBMoRC+0J4UBalhSkscmIFzPEwUQnpqQWENn3y6dfnrt9/++Zc3AmHbru4TXPvl"
    "4b8v3h69PsgdVrbLLVKzyNT7w2e/Pt2/den2T/948cTubrtsAL46/OMUPdpld6MoINJiHN06+cPh1nqjpaVuu6tt26POPH5zlTHs"
    "0cOjArCUlprXLz74rWaUyVSKQGaAaFPf8f1mCEoAuLvbbY8afPl875yGbbe7XMc0kRI3P/vxyZiAwixsCpACyuuX959rloIUSaYm"
    "aGGvwYQCTZReJBEoWdV6ioJAVOqAmKWpKBGgKCkSl+JlA1K0xFakoCoogjJhJmEZRBDJB1KR1gmBZoKrAAAAAElFTkSuQmCC"
)


def version_query():
    """The ``version`` query parameter of every task route."""
    return Query(
        None, ge=1, description="model version; default: the latest served (config.pbtxt's version_policy says which)"
    )


BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "one image"},
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "several images, classified as one batch",
                        },
                    },
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "description": "base64 (or a data: URL)"},
                        "images": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "example": {"image": EXAMPLE_PNG},
            },
        },
    }
}


async def guarded(awaitable, timeout_s: float):
    """Map the batcher's overload signals to 503 (with Retry-After) and 504, and a model that fails on
    a batch to a 500 naming the request id (every caller of that batch gets it; the batcher goes on)."""
    try:
        return await awaitable
    except QueueFullError as exc:
        raise ApiError(503, "queue_full", str(exc), {"Retry-After": "1"}) from None
    except TimeoutError:
        raise ApiError(504, "timeout", f"no result within {timeout_s} s") from None
    except (ApiError, InputError):
        raise
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime (or the model) failed on this batch
        log.error("inference failed (request %s): %s", request_id_var.get(), plain(exc))
        raise ApiError(
            500,
            "inference_failed",
            f"inference failed for this request (request id {request_id_var.get()}): {plain(exc)}",
        ) from None
