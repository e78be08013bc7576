"""A fast path for the multipart bodies clients send: one parse of the bytes already in memory.

Starlette's form parser (python-multipart, a streaming state machine with per-chunk callbacks and a
spooled temporary file per upload) cost about a third of a light ``/classify`` request. Bodies are
already read whole and capped by the size-limit middleware, so the common shape - every part
``Content-Disposition: form-data; name="..."[; filename="..."]`` with an optional ``Content-Type``,
CRLF line ends - is split here with ``bytes.find``. Anything else (a preamble, other headers or
encodings, RFC 2231 ``filename*``, escaped quotes, a missing closing delimiter, more files than the
caller allows) returns None and the caller uses Starlette's parser, which answers as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PARAM = re.compile(r';\s*([A-Za-z0-9_-]+)="([^"\\]*)"')
_BOUNDARY = re.compile(r';\s*boundary=(?:"([^"]+)"|([^\s;]+))', re.IGNORECASE)
_ALLOWED_HEADERS = {"content-disposition", "content-type"}


@dataclass
class Upload:
    """A file part: what Starlette's ``UploadFile`` offers the routes (filename, content type, read)."""

    filename: str
    content_type: str | None
    data: bytes

    async def read(self) -> bytes:
        return self.data


def boundary_of(content_type: str) -> bytes | None:
    m = _BOUNDARY.search(content_type)
    if not m:
        return None
    b = (m.group(1) or m.group(2)).encode("latin-1")
    return b if 0 < len(b) <= 200 else None


def _part(chunk: bytes) -> tuple[str, Upload | None] | None:
    """(field name, Upload or None for a non-file field) of one part, or None if it is unusual."""
    head, sep, data = chunk.partition(b"\r\n\r\n")
    if not sep:
        return None
    disposition, ctype = None, None
    try:  # as Starlette decodes header values: UTF-8, else Latin-1
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    for line in text.split("\r\n"):
        name, colon, value = line.partition(":")
        key = name.strip().lower()
        if not colon or key not in _ALLOWED_HEADERS:
            return None
        if key == "content-disposition":
            disposition = value.strip()
        else:
            ctype = value.strip()
    if disposition is None or not disposition.lower().startswith("form-data"):
        return None
    rest = disposition[len("form-data") :]
    params = dict(_PARAM.findall(rest))
    if "name" not in params or "\\" in rest or "*=" in rest or rest.count('"') != 2 * len(params):
        return None
    if "filename" not in params:
        return params["name"], None
    return params["name"], Upload(params["filename"], ctype, data)


def parse(body: bytes, content_type: str, max_files: int) -> list[tuple[str, Upload]] | None:
    """The file parts (field name, Upload) in order, or None when the body is not the common shape."""
    boundary = boundary_of(content_type)
    if boundary is None or not body.startswith(b"--" + boundary + b"\r\n"):
        return None
    delim = b"\r\n--" + boundary
    pos, files = len(boundary) + 4, []
    while True:
        end = body.find(delim, pos)
        if end < 0:
            return None
        part = _part(body[pos:end])
        if part is None:
            return None
        if part[1] is not None:
            files.append((part[0], part[1]))
            if len(files) > max_files:
                return None
        tail = body[end + len(delim) : end + len(delim) + 2]
        if tail == b"--":
            return files if body[end + len(delim) + 2 :] in (b"", b"\r\n") else None
        if tail != b"\r\n":
            return None
        pos = end + len(delim) + 2
