"""Every error code triggered by a real bad input; the service stays healthy afterwards."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.service.conftest import png_bytes, ready_client


def _assert_error(r, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"error"} and body["error"]["code"] == code and body["error"]["message"]
    assert r.headers["x-request-id"]


def test_unknown_model_is_404(client, digits) -> None:
    _assert_error(
        client.post("/classify?model=nope", content=digits[0][0], headers={"content-type": "image/png"}),
        404,
        "model_not_found",
    )
    _assert_error(client.get("/models/nope"), 404, "model_not_found")
    _assert_error(client.get("/no/such/route"), 404, "not_found")


def test_unsupported_media_type_is_415(client) -> None:
    _assert_error(
        client.post("/classify", content=b"hello", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )


def test_undecodable_and_truncated_images_are_422(client, digits) -> None:
    _assert_error(
        client.post("/classify", content=b"\x89PNG not really", headers={"content-type": "image/png"}),
        422,
        "undecodable_image",
    )
    big = png_bytes(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8))
    _assert_error(
        client.post("/classify", content=big[: len(big) // 2], headers={"content-type": "image/png"}),
        422,
        "undecodable_image",
    )
    _assert_error(client.post("/classify", content=b"", headers={"content-type": "image/png"}), 422, "empty_image")


def test_bad_json_and_base64(client) -> None:
    _assert_error(
        client.post("/classify", content=b"{oops", headers={"content-type": "application/json"}), 400, "invalid_json"
    )
    _assert_error(client.post("/classify", json={"image": "***"}), 422, "invalid_base64")
    _assert_error(client.post("/classify", json={"picture": "abc"}), 422, "no_image")


def test_multipart_without_file_is_400(client) -> None:
    _assert_error(
        client.post("/classify", data={"note": "no file here"}, files={"other": ("x.txt", b"x")}), 400, "no_image"
    )


def test_invalid_query_is_422(client, digits) -> None:
    _assert_error(
        client.post("/classify?top_k=0", content=digits[0][0], headers={"content-type": "image/png"}),
        422,
        "invalid_request",
    )
    _assert_error(
        client.post("/classify?explain=gradcam", content=digits[0][0], headers={"content-type": "image/png"}),
        422,
        "invalid_request",
    )


def test_too_many_pixels_and_too_large_body_are_413(digits) -> None:
    with ready_client(max_image_pixels=10_000, max_body_bytes=50_000) as c:
        img = png_bytes(np.zeros((150, 150), np.uint8))
        _assert_error(c.post("/classify", content=img, headers={"content-type": "image/png"}), 413, "image_too_large")
        noise = png_bytes(np.random.default_rng(1).integers(0, 255, (400, 400), dtype=np.uint8))
        assert len(noise) > 50_000
        _assert_error(
            c.post("/classify", content=noise, headers={"content-type": "image/png"}), 413, "payload_too_large"
        )
        # streamed without a Content-Length: counted while reading
        _assert_error(
            c.post("/classify", content=iter([noise[:30_000], noise[30_000:]]), headers={"content-type": "image/png"}),
            413,
            "payload_too_large",
        )
        assert c.post("/classify", content=digits[0][0], headers={"content-type": "image/png"}).status_code == 200


def test_too_many_images_is_413(digits) -> None:
    with ready_client(max_images_per_request=2) as c:
        files = [("files", (f"{i}.png", digits[i][0], "image/png")) for i in range(3)]
        r = c.post("/classify", files=files)
        assert r.status_code in (400, 413), r.text  # Starlette itself may refuse the extra file with 400
        assert r.json()["error"]["code"] in ("too_many_images", "http_error")


def test_timeout_is_504_and_service_stays_healthy(digits) -> None:
    with ready_client(request_timeout_s=1e-6) as c:
        _assert_error(c.post("/classify", content=digits[0][0], headers={"content-type": "image/png"}), 504, "timeout")
        assert c.get("/health/ready").status_code == 200


def test_api_key_is_required_when_set(digits) -> None:
    with ready_client(api_key="s3cret-key") as c:
        _assert_error(
            c.post("/classify", content=digits[0][0], headers={"content-type": "image/png"}), 401, "unauthorized"
        )
        _assert_error(c.get("/models", headers={"x-api-key": "wrong-key"}), 401, "unauthorized")
        assert c.get("/models", headers={"x-api-key": "s3cret-key"}).status_code == 200
        assert c.get("/models", headers={"authorization": "Bearer s3cret-key"}).status_code == 200
        assert c.get("/health/live").status_code == 200  # probes need no key
        assert c.get("/v2/health/ready").status_code == 200
        _assert_error(c.get("/metrics"), 401, "unauthorized")  # metrics: behind the key by default
        assert c.get("/v2/models/lenet5_digits").status_code == 401
    with ready_client(api_key="s3cret-key", health_open=False, metrics_open=True) as c:
        _assert_error(c.get("/health/ready"), 401, "unauthorized")
        assert c.get("/v2/health/live").status_code == 401
        assert c.get("/health/ready", headers={"x-api-key": "s3cret-key"}).status_code == 200
        assert c.get("/metrics").status_code == 200


def test_metrics_route_labels_stay_bounded(client) -> None:
    for i in range(5):
        client.get(f"/no/such/path/{i}")
    text = client.get("/metrics").text
    assert "/no/such/path" not in text and 'route="unmatched"' in text


def test_service_is_healthy_after_a_burst_of_bad_inputs(client, digits) -> None:
    for body, ctype in [
        (b"", "image/png"),
        (b"GIF89a....", "image/gif"),
        (b"x" * 1000, "image/jpeg"),
        (b"{}", "application/json"),
        (b"--x--", "multipart/form-data; boundary=x"),
    ]:
        r = client.post("/classify", content=body, headers={"content-type": ctype})
        assert 400 <= r.status_code < 500 and "error" in r.json()
    assert client.get("/health/ready").status_code == 200
    r = client.post("/classify", content=digits[0][0], headers={"content-type": "image/png"})
    assert r.status_code == 200


def _bar(mode: str) -> Image.Image:
    base = Image.new("L", (40, 40), 0)
    base.paste(255, (15, 5, 25, 35))  # a vertical bar
    return base.convert(mode)


@pytest.mark.parametrize("mode", ["RGBA", "P", "1", "CMYK", "LA"])
def test_unusual_image_modes_are_converted(client, mode: str) -> None:
    buf = io.BytesIO()
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    _bar(mode).save(buf, format=fmt)
    r = client.post("/classify", content=buf.getvalue(), headers={"content-type": f"image/{fmt.lower()}"})
    assert r.status_code == 200, r.text


def test_16_bit_images_are_scaled_not_clipped(client) -> None:
    ramp = np.tile(np.linspace(0, 255, 40).astype(np.uint8), (40, 1))  # (40, 40) horizontal ramp
    eight, sixteen = io.BytesIO(), io.BytesIO()
    Image.fromarray(ramp).save(eight, format="PNG")
    Image.fromarray(ramp.astype(np.uint16) * 257).save(sixteen, format="PNG")  # the same picture, 16 bits
    q = "/classify?model=lenet5_digits&top_k=10"
    a = client.post(q, content=eight.getvalue(), headers={"content-type": "image/png"}).json()["results"]
    b = client.post(q, content=sixteen.getvalue(), headers={"content-type": "image/png"}).json()["results"]
    assert a == b


@pytest.mark.parametrize("path", ["/classify", "/nowcast", "/segment"])
def test_deeply_nested_json_is_a_400_not_a_500(client, path: str) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    assert client.get("/health/ready").status_code == 200


def test_messages_carry_no_python_internals(client) -> None:
    for data in (b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40):
        r = client.post("/classify", content=data, headers={"content-type": "image/png"})
        assert r.status_code == 422
        message = r.json()["error"]["message"]
        assert "0x" not in message and "<" not in message and "BytesIO" not in message, message


def test_a_body_shorter_than_its_content_length_gets_a_408_not_a_hang() -> None:
    import socket
    import time

    from tests.service.conftest import running_server

    with running_server(env={"CONVSERVE_BODY_TIMEOUT_S": "1"}) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            t0 = time.time()
            s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n")
            s.sendall(b"\x89PNG" + b"\0" * 100)  # then nothing more
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
            took = time.time() - t0
        assert reply.startswith(b"HTTP/1.1 408") and b'"body_timeout"' in reply, reply[:300]
        assert took < 5
        assert httpx.get(f"{base}/health/ready").status_code == 200
