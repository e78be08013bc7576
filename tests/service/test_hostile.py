"""A hostile battery: each input gets a clear 4xx in the one JSON error shape, and the next good
request still succeeds. In-process for the payloads; a real uvicorn for what lives below the app
(invalid HTTP, bodies shorter, longer or slower than they say)."""

from __future__ import annotations

import io
import socket
import struct
import time
import zlib
from datetime import datetime

import numpy as np
import pytest
from PIL import Image

from tests.radar_files import npy_bytes, write_netcdf_frame
from tests.service.conftest import running_server

PNG = {"content-type": "image/png"}
OCTET = {"content-type": "application/octet-stream"}


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height, with one tiny compressed row: a decompression bomb's
    shape without its bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _npz_bomb() -> bytes:
    """An .npz whose member declares a (3, 40000, 40000) float64 array: 38 GB if unpacked."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1,), np.float64)) | {"shape": (3, 40000, 40000)}
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    member.write(b"\0" * 4096)
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("frames.npy", member.getvalue())
    return out.getvalue()


def _assert_error(r, status: int | tuple[int, ...], code: str | None = None) -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, r.text
    err = r.json()["error"]
    assert set(err) == {"code", "message"} and err["message"]
    assert " at 0x" not in err["message"] and "Traceback" not in err["message"]
    if code is not None:
        assert err["code"] == code, err


def _still_serves(client, digits) -> None:
    r = client.post("/classify", content=digits[0][0], headers=PNG)
    assert r.status_code == 200 and r.json()["results"][0]["predictions"][0]["index"] == digits[0][1]


IMAGE_CASES = {  # name -> (body, expected status, expected code or None)
    "0x0": (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, 422, None),
    "decompression_bomb_png": (_png_header_only(30000, 30000), 413, "image_too_large"),
    "wide_20000x1": (_png(np.full((1, 20000), 200, np.uint8)), 413, None),  # over the pixel limit set below
    "truncated_jpeg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x01" * 30, 422, "undecodable_image"),
    "truncated_tiff": (b"II*\x00\x08\x00\x00\x00\x10\x00", 422, None),
    "not_an_image": (b"GIF89a" + b"\xff" * 20, 422, None),
}


@pytest.mark.parametrize("name", list(IMAGE_CASES))
@pytest.mark.parametrize("route", ["/classify", "/segment", "/denoise"])
def test_hostile_images_get_a_clear_4xx(name: str, route: str, digits) -> None:
    from tests.service.conftest import ready_client

    body, status, code = IMAGE_CASES[name]
    with ready_client(max_image_pixels=10_000) as c:
        _assert_error(c.post(route, content=body, headers=PNG), status if route != "/denoise" else (status, 422), code)
        _still_serves(c, digits)


def test_tiny_and_odd_images_are_answered(client, digits) -> None:
    """1 x 1 and 1 x 20 images are valid images: classified (with a warning), not refused or crashed."""
    for shape in ((1, 1), (1, 20), (20, 1)):
        r = client.post("/classify", content=_png(np.full(shape, 255, np.uint8)), headers=PNG)
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["warnings"], "a uniform speck is no digit: the answer must say so"
    _still_serves(client, digits)


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("object_npy", 422, "pickle_refused"),
        ("nan_inf_npy", 422, "invalid_values"),
        ("huge_values_npy", 200, None),
        ("huge_negative_npy", 200, None),  # make fuzz: overflowed while detecting the no-rain value
        ("npz_bomb", 413, "array_too_large"),
        ("truncated_hdf5", 422, None),
        ("truncated_netcdf", 422, None),
        ("nested_json_frames", 400, None),
    ],
)
def test_hostile_radar_inputs_get_a_clear_4xx(client, digits, tmp_path, name: str, status: int, code) -> None:
    frames = np.random.default_rng(0).uniform(0, 40, (3, 32, 32)).astype(np.float32)
    if name == "object_npy":
        r = client.post("/nowcast", content=npy_bytes(np.array([None] * 3, object), True), headers=OCTET)
    elif name == "nan_inf_npy":
        bad = frames.copy()
        bad[0, 0, 0] = np.inf
        r = client.post("/nowcast", content=npy_bytes(bad), headers=OCTET)
    elif name == "huge_values_npy":  # finite but absurd dBZ: a forecast, not a crash
        r = client.post("/nowcast", content=npy_bytes(np.full((3, 32, 32), 3e38, np.float32)), headers=OCTET)
    elif name == "huge_negative_npy":
        bad = frames.copy()
        bad[:, :4] = -3e38
        r = client.post("/nowcast", content=npy_bytes(bad), headers=OCTET)
    elif name == "npz_bomb":
        r = client.post("/nowcast", content=_npz_bomb(), headers=OCTET)
    elif name == "truncated_hdf5":
        r = client.post("/nowcast", content=b"\x89HDF\r\n\x1a\n" + b"\0" * 200, headers=OCTET)
    elif name == "truncated_netcdf":
        nc = write_netcdf_frame(tmp_path / "f.nc", frames[0], datetime(2026, 7, 1, 12)).read_bytes()
        r = client.post("/nowcast", files=[("files", (f"{i}.nc", nc[: len(nc) // 2], "x")) for i in range(3)])
    else:
        nested = b'{"frames": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        r = client.post("/nowcast", content=nested, headers={"content-type": "application/json"})
    if status == 200:
        assert r.status_code == 200, r.text
    else:
        _assert_error(r, status, code)
    _still_serves(client, digits)


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "lenet5_digits/../resnet20_digits", "%00", "a" * 5000, "LENET5_DIGITS"]
)
def test_unknown_or_path_like_model_names_are_404(client, digits, name: str) -> None:
    r = client.post("/classify", params={"model": name}, content=digits[0][0], headers=PNG)
    _assert_error(r, 404, "model_not_found")
    from urllib.parse import quote

    r = client.get(f"/v2/models/{quote(name, safe='')}")
    assert r.status_code == 404 and r.json()["error"]
    _still_serves(client, digits)


@pytest.fixture(scope="module")
def raw_server():
    env = {"CONVSERVE_BODY_TIMEOUT_S": "2", "CONVSERVE_BODY_DEADLINE_S": "3", "CONVSERVE_MAX_BODY_BYTES": "2000000"}
    with running_server(env=env) as base:
        host, port = base.removeprefix("http://").split(":")
        yield base, (host, int(port))


def _exchange(addr, *parts: bytes, pause_s: float = 0.0, read_timeout_s: float = 15) -> tuple[bytes, float]:
    """Send the parts (pausing between them), then read until the server closes or a JSON body is complete."""
    import select

    t0 = time.time()
    with socket.create_connection(addr, timeout=read_timeout_s) as s:
        try:
            for p in parts:
                if select.select([s], [], [], pause_s)[0]:
                    break  # the server has answered: stop sending
                s.sendall(p)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the rest was sent
        reply = b""
        while not (b"\r\n\r\n" in reply and reply.rstrip().endswith(b"}")):
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            reply += chunk
    return reply, time.time() - t0


def _json_status(reply: bytes) -> tuple[int, dict]:
    import json

    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower(), reply[:300]
    return int(head.split()[1]), json.loads(body)


def test_transfer_encoding_with_content_length_is_a_json_400(raw_server) -> None:
    _, addr = raw_server
    reply, _ = _exchange(
        addr,
        b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    status, body = _json_status(reply)
    assert status == 400 and body["error"]["code"] == "bad_http_request"


def test_garbage_request_line_is_a_json_400(raw_server) -> None:
    _, addr = raw_server
    status, body = _json_status(_exchange(addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n")[0])
    assert status == 400 and body["error"]["code"] == "bad_http_request"


def test_a_body_longer_than_its_content_length_gets_a_clear_answer(raw_server, digits) -> None:
    """The declared length is the body; the extra bytes are an invalid next request on the connection,
    which is answered with a JSON 400 and closed (the parser may see them before the first answer)."""
    import httpx

    base, addr = raw_server
    data = digits[0][0]
    head = f"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {len(data)}\r\n\r\n"
    reply, _ = _exchange(addr, head.encode() + data + b"TRAILING GARBAGE\r\n\r\n")
    if not reply.startswith(b"HTTP/1.1 200"):
        status, body = _json_status(reply)
        assert status == 400 and body["error"]["code"] == "bad_http_request"
    assert httpx.post(f"{base}/classify", content=data, headers=PNG, timeout=30).status_code == 200


def test_a_slow_loris_body_gets_a_408_within_the_deadline(raw_server, digits) -> None:
    base, addr = raw_server
    head = b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
    drip = [b"\x89PNG"] + [b"\0" * 10] * 40  # 10 bytes a second: each wait is short, the whole is not
    reply, took = _exchange(addr, head, *drip, pause_s=1.0)
    status, body = _json_status(reply)
    assert status == 408 and "not complete" in body["error"]["message"]
    assert took < 10
    import httpx

    assert httpx.post(f"{base}/classify", content=digits[0][0], headers=PNG, timeout=30).status_code == 200


def test_an_oversize_body_is_refused_before_it_is_sent(raw_server) -> None:
    _, addr = raw_server
    head = b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 900000000\r\n\r\n"
    reply, took = _exchange(addr, head, b"\0" * 1000)
    status, body = _json_status(reply)
    assert status == 413 and body["error"]["code"] == "payload_too_large" and took < 5


@pytest.mark.parametrize(
    ("route", "query", "kind", "code"),
    [  # what make fuzz found: each was a 500 before it was fixed
        ("/segment", {"diameter": 1e-9}, "image", "diameter_out_of_range"),
        ("/segment", {"diameter": 0.001}, "image", "diameter_out_of_range"),
        ("/nowcast", {"zr_a": 4.3e16, "zr_b": 3.9e-32, "output_unit": "mm/h"}, "frames", "invalid_zr"),
        ("/nowcast", {"no_rain": -1.9e208}, "frames", "invalid_no_rain"),
        ("/nowcast", {}, "frames_1e300", "invalid_values"),
        ("/nowcast", {}, "frames_huge_int", "wrong_shape"),
    ],
)
def test_what_the_fuzzer_found_is_a_clear_4xx(client, digits, route, query, kind, code) -> None:
    if kind == "image":
        r = client.post(route, params=query, content=_png(np.full((64, 64), 40, np.uint8)), headers=PNG)
    else:
        frames = np.random.default_rng(0).uniform(0, 40, (3, 16, 16)).tolist()
        if kind == "frames_1e300":
            frames[0][0][0] = 1e300
        if kind == "frames_huge_int":
            frames[0][0][0] = 10**400
        r = client.post(route, params=query, json={"frames": frames})
    _assert_error(r, 422, code)
    _still_serves(client, digits)
