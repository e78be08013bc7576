"""uvicorn's HTTP protocol, answering requests that are not valid HTTP/1.1 (both ``Transfer-Encoding``
and ``Content-Length``, a malformed request line, bad header bytes) in the one JSON error shape
instead of uvicorn's plain-text ``Invalid HTTP request received.``"""

from __future__ import annotations

import json

from service.errors import error_body

try:  # the implementation uvicorn's "auto" picks: httptools when installed, else h11
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - without uvicorn[standard]
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base


class JsonErrorHttpProtocol(_Base):
    def send_400_response(self, msg: str) -> None:
        body = json.dumps(error_body("bad_http_request", f"not a valid HTTP/1.1 request: {msg}")).encode()
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
