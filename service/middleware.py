"""Pure-ASGI middleware: request ids, body-size limit, access log and HTTP metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

from service.errors import ApiError, error_body
from service.logs import request_id_var
from service.metrics import ServiceMetrics

log = logging.getLogger("convserve.access")


class RequestContextMiddleware:
    def __init__(
        self,
        app,
        metrics: ServiceMetrics,
        max_body_bytes: int,
        body_timeout_s: float = 10.0,
        body_deadline_s: float = 120.0,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s, self.body_deadline_s = body_timeout_s, body_deadline_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:128] or uuid.uuid4().hex
        token = request_id_var.set(rid)
        scope.setdefault("state", {})["request_id"] = rid  # for handlers outside this context (500s)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await self._reject(
                    send_with_id,
                    413,
                    "payload_too_large",
                    f"request body of {int(length):,} bytes exceeds the limit of {self.max_body_bytes:,}",
                )
                return
            await self.app(scope, self._limited(receive), send_with_id)
        finally:
            took = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"  # bounded labels: no raw paths
            state = scope.get("state") or {}
            model = state.get("model", "")
            self.metrics.observe_http(route, model, status, took, state.get("model_version", ""))
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "%s %s -> %s in %.1f ms",
                    scope["method"],
                    scope["path"],
                    status,
                    1000 * took,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(1000 * took, 2),
                        "model": model,
                    },
                )
            request_id_var.reset(token)

    def _limited(self, receive):
        """Count streamed (chunked) body bytes too: past the limit the handler hears a 413. A body that
        stops arriving (a Content-Length longer than what is sent) gets a 408 instead of holding on,
        and so does one trickling in so slowly that it is not complete within the deadline."""
        seen, deadline = 0, None

        async def wrapped():
            nonlocal seen, deadline
            now = time.monotonic()
            deadline = deadline or now + self.body_deadline_s
            wait = min(self.body_timeout_s, deadline - now)
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    message = await receive()
            except TimeoutError:
                if wait < self.body_timeout_s:
                    raise ApiError(
                        408,
                        "body_timeout",
                        f"the request body was not complete {self.body_deadline_s:g} s after it began "
                        f"({seen:,} bytes received)",
                    ) from None
                raise ApiError(
                    408,
                    "body_timeout",
                    f"the request body stopped arriving for {self.body_timeout_s:g} s "
                    f"({seen:,} bytes received; is Content-Length larger than the body?)",
                ) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise ApiError(
                        413, "payload_too_large", f"request body exceeds the limit of {self.max_body_bytes:,} bytes"
                    )
            return message

        return wrapped

    @staticmethod
    async def _reject(send, status: int, code: str, message: str) -> None:
        body = json.dumps(error_body(code, message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
