"""Photo formats phones write: HEIC (iPhones; read through pillow-heif) and AVIF (Pillow), on every image
endpoint, answered as the same picture in PNG is; the denoiser measures their noise as lossy files keep it."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from tests.conftest import ROOT
from training.data.natural import test_images

FORMATS = [("HEIF", "image/heic"), ("AVIF", "image/avif")]


def encode(a: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "ctype"), FORMATS)
def test_a_digit_photo_is_read(client, fmt: str, ctype: str) -> None:
    for path in sorted((ROOT / "examples" / "digits").glob("digit_*_black_on_white.png")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        r = client.post("/classify", files={"file": (f"photo.{fmt.lower()}", encode(rgb, fmt, quality=90), ctype)})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["predictions"][0]["label"] == path.name.split("_")[1], path.name


@pytest.mark.parametrize(("fmt", "ctype"), FORMATS)
def test_cells_are_segmented_as_from_a_png(client, fmt: str, ctype: str) -> None:
    raw = tifffile.imread(Path(ROOT) / "examples" / "cells" / "cells_16bit.tif").astype(np.float64)
    lo, hi = np.percentile(raw, (0.5, 99.8))
    a8 = np.clip((raw - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    count = {}
    for name, body, ct in (("png", encode(a8, "PNG"), "image/png"), (fmt, encode(a8, fmt, quality=90), ctype)):
        r = client.post("/segment", content=body, headers={"content-type": ct})
        assert r.status_code == 200, r.text
        count[name] = len(r.json()["objects"])
    assert abs(count[fmt] - count["png"]) <= 3, count


@pytest.mark.parametrize(("fmt", "ctype"), FORMATS)
def test_a_noisy_photo_is_denoised_as_a_lossy_file(client, fmt: str, ctype: str) -> None:
    clean = (test_images(gray=False)["astronaut"][40:232, 200:392] * 255).round()
    noisy = np.clip(clean + np.random.default_rng(4).normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    r = client.post("/denoise?output=json", content=encode(noisy, fmt, quality=90), headers={"content-type": ctype})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["noise_measured_as"] == "lossy" and j["denoised_as"] == "rgb" and j["shape"] == [192, 192, 3]
    assert j["sigma_estimated"] == pytest.approx(25, rel=0.25)
    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(j["image"]))), np.float64)
    assert 10 * np.log10(255**2 / np.mean((out - clean) ** 2)) > 27  # the upload is ~22 dB
    assert any(("HEIC" if fmt == "HEIF" else fmt) in w for w in j["warnings"])


def _broken_avif() -> bytes:
    """An AVIF whose header reads but whose colour planes fail to decode (Pillow's AVIF plugin raises
    RuntimeError there, not OSError): found by overwriting a few bytes, seeded."""
    rng = np.random.default_rng(0)
    good = encode((rng.random((48, 64, 3)) * 255).astype(np.uint8), "AVIF", quality=80)
    for _ in range(3000):
        d = bytearray(good)
        for _ in range(int(rng.integers(1, 8))):
            d[int(rng.integers(len(d)))] = int(rng.integers(256))
        try:
            img = Image.open(io.BytesIO(bytes(d)))
        except Exception:  # noqa: BLE001, S112 - a header that does not read is another case; keep looking
            continue
        try:
            img.load()
        except RuntimeError:
            return bytes(d)
        except Exception:  # noqa: BLE001, S112 - other failures are covered elsewhere; keep looking
            continue
    raise AssertionError("no mutation made the AVIF decoder fail")


def test_a_broken_avif_is_a_422_everywhere(client) -> None:
    body = _broken_avif()
    for path in ("/classify", "/denoise", "/segment"):
        r = client.post(path, files={"file": ("photo.avif", body, "image/avif")})
        assert r.status_code == 422 and r.json()["error"]["code"] == "undecodable_image", (path, r.text)
    assert client.get("/health/ready").status_code == 200
