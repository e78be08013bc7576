"""One error shape for every failure: ``{"error": {"code": ..., "message": ...}}`` - except on the
Open Inference Protocol routes (``/v2/...``), which answer ``{"error": "..."}`` as that protocol says."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelrepo.errors import InputError

log = logging.getLogger("convserve")


class ApiError(Exception):
    """An error the client should see, with its HTTP status and a stable machine-readable code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


# InputError codes whose HTTP status is not 422 (modelrepo and the service tasks know no HTTP)
INPUT_STATUS = {
    "frames_too_large": 413,
    "array_too_large": 413,
    "image_too_large": 413,
    "unsupported_bit_depth": 415,
    "wrong_dtype": 415,
    "unsupported_format": 415,
}

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "payload_too_large"}


V2_PREFIX = "/v2"


def respond(request: Request, status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    """The error answer in the shape the route's protocol uses."""
    if request.url.path == V2_PREFIX or request.url.path.startswith(V2_PREFIX + "/"):
        # the protocol answers a malformed request with 400 (Triton does); 422 is ours elsewhere
        return JSONResponse({"error": message}, status_code=400 if status == 422 else status, headers=headers)
    return error_response(status, code, message, headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return respond(request, exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        return respond(request, INPUT_STATUS.get(exc.code, 422), exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return respond(request, 422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return respond(request, exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        rid = getattr(request.state, "request_id", "-")
        return respond(
            request,
            500,
            "internal_error",
            f"internal error ({type(exc).__name__}); see the server log (request id {rid})",
        )
