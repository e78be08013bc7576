"""The multipart fast path agrees with Starlette's parser on what clients send, and steps aside otherwise."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import UploadFile
from starlette.requests import Request

from service import multipart


def _encode(files: list[tuple[str, str, bytes, str | None]], data: dict | None = None) -> tuple[bytes, str]:
    """A body as httpx (the client our users' Python code runs) encodes it, and its content type."""
    req = httpx.Request(
        "POST",
        "http://x/",
        files=[(n, (fn, b, ct) if ct else (fn, b)) for n, fn, b, ct in files],
        data=data,
    )
    return req.read(), req.headers["content-type"]


def _starlette(body: bytes, ctype: str) -> list[tuple[str, str | None, str | None, bytes]]:
    async def go():
        sent = False

        async def receive():
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {"type": "http", "method": "POST", "headers": [(b"content-type", ctype.encode())]}
        form = await Request(scope, receive).form(max_files=1000, max_fields=1000)
        return [
            (k, v.filename, v.content_type, await v.read()) for k, v in form.multi_items() if isinstance(v, UploadFile)
        ]

    return asyncio.run(go())


def _fast(body: bytes, ctype: str, max_files: int = 1000):
    parts = multipart.parse(body, ctype, max_files)
    return None if parts is None else [(k, u.filename, u.content_type, u.data) for k, u in parts]


def test_the_common_shapes_parse_like_starlette() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3 + b"\r\n--not-the-boundary\r\n"
    cases = [
        [("file", "digit.png", png, "image/png")],
        [("files", "a.png", png, "image/png"), ("files", "b b.jpg", b"\xff\xd8jpeg", "image/jpeg")],
        [("f1", "radar_1.h5", b"\x89HDF\r\n", None), ("f2", "radar_2.h5", b"", "application/x-hdf5")],
    ]
    for files in cases:
        body, ctype = _encode(files, data={"note": "a text field is not a file"})
        assert _fast(body, ctype) == _starlette(body, ctype) and _fast(body, ctype)
    # curl quotes nothing; some clients quote the boundary
    body, ctype = _encode(cases[0])
    b = multipart.boundary_of(ctype).decode()
    assert _fast(body, f'multipart/form-data; boundary="{b}"') == _starlette(body, ctype)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["file", "files", "frame2", "frame10"]),
            st.text(alphabet="abcXYZ019_-. é雨", min_size=1, max_size=12),
            st.binary(max_size=300),
            st.sampled_from([None, "image/png", "application/octet-stream"]),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_any_body_httpx_encodes_parses_like_starlette(files) -> None:
    body, ctype = _encode(files)
    assert _fast(body, ctype) == _starlette(body, ctype)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b, bd: b"preamble\r\n" + b,  # a preamble: legal, rare
        lambda b, bd: b[: b.rindex(b"--" + bd + b"--")],  # no closing delimiter
        lambda b, bd: b.replace(b"Content-Type: image/png", b"Content-Transfer-Encoding: base64"),
        lambda b, bd: b.replace(b'filename="d.png"', b"filename*=utf-8''d%C3%A9.png"),
        lambda b, bd: b.replace(b"\r\n\r\n", b"\n\n", 1),  # bare LF line ends
    ],
)
def test_unusual_bodies_are_left_to_starlette(mutate) -> None:
    body, ctype = _encode([("file", "d.png", b"pixels", "image/png")])
    assert _fast(body, ctype) is not None
    assert _fast(mutate(body, multipart.boundary_of(ctype)), ctype) is None


def test_more_files_than_allowed_are_left_to_starlette() -> None:
    body, ctype = _encode([("files", f"{i}.png", b"x", "image/png") for i in range(4)])
    assert _fast(body, ctype, max_files=4) is not None and _fast(body, ctype, max_files=3) is None


def test_a_missing_or_absurd_boundary_is_not_parsed() -> None:
    body, _ = _encode([("file", "d.png", b"x", "image/png")])
    assert multipart.parse(body, "multipart/form-data", 8) is None
    assert multipart.parse(body, "multipart/form-data; boundary=" + "x" * 201, 8) is None


def test_non_ascii_file_names_parse_like_starlette() -> None:
    body, ctype = _encode([("file", "Bäume_雨.png", b"x", "image/png")])
    assert _fast(body, ctype) == _starlette(body, ctype)
