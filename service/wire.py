"""The control channel between front-end workers and the inference engine (a Unix socket).

A frame is a 4-byte big-endian header length, a JSON header, then ``header["payload"]`` raw bytes
(0 when the tensor travels through shared memory, which is the normal case). No pickle.
"""

from __future__ import annotations

import asyncio
import json
import struct

_LEN = struct.Struct(">I")
MAX_HEADER = 1 << 24


async def read_frame(reader: asyncio.StreamReader) -> tuple[dict, bytes]:
    (n,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    if n > MAX_HEADER:
        raise ValueError(f"control header of {n} bytes")
    header = json.loads(await reader.readexactly(n))
    payload = await reader.readexactly(header.get("payload", 0)) if header.get("payload") else b""
    return header, payload


def write_frame(writer: asyncio.StreamWriter, header: dict, payload: bytes | memoryview = b"") -> None:
    """Queue one frame in a single write, so concurrent tasks never interleave frames."""
    data = bytes(payload)  # len() of a multi-dimensional memoryview counts rows, not bytes
    raw = json.dumps(header | {"payload": len(data)}).encode()
    writer.write(_LEN.pack(len(raw)) + raw + data)
