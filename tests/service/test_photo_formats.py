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


def _png16(a: np.ndarray) -> bytes:
    """A 16-bit colour / gray + alpha PNG as OpenCV, Lightroom or darktable write it (Pillow cannot)."""
    import imagecodecs

    return bytes(imagecodecs.png_encode(a))


def test_a_16_bit_colour_png_keeps_its_16_bits(client) -> None:
    """Pillow reads 48-bit PNGs as 8-bit RGB: /denoise answered 8-bit and /segment lost the low byte. Now
    they are read with their 16 bits: /denoise answers a 16-bit colour PNG, /segment measures the 16-bit
    values; gray + alpha keeps its alpha."""
    from service.images import deep_png

    clean = test_images(gray=False)["astronaut"][40:168, 200:328].astype(np.float64)
    noisy = np.clip(np.round((clean + np.random.default_rng(1).normal(0, 20 / 255, clean.shape)) * 65535), 0, 65535)
    body = _png16(noisy.astype(np.uint16))
    assert Image.open(io.BytesIO(body)).mode == "RGB"  # what Pillow makes of it: 8 bits
    np.testing.assert_array_equal(deep_png(body, 10**6), noisy)
    r = client.post("/denoise", files={"file": ("photo.png", body, "image/png")})
    assert r.status_code == 200, r.text
    out = deep_png(r.content, 10**6)
    assert out is not None and out.dtype == np.uint16 and out.shape == (128, 128, 3)
    assert np.mean((out / 65535 - clean) ** 2) < 0.5 * np.mean((noisy / 65535 - clean) ** 2)
    j = client.post("/denoise?output=json", files={"file": ("photo.png", body, "image/png")}).json()
    assert j["dtype"] == "uint16" and j["format"] == "png"

    cells = tifffile.imread(Path(ROOT) / "examples" / "cells" / "cells_16bit.tif")
    rgb = np.stack([cells, cells // 4, np.zeros_like(cells)], -1).astype(np.uint16)
    r = client.post("/segment?channel=red", files={"file": ("cells.png", _png16(rgb), "image/png")})
    as_tiff = client.post(
        "/segment",
        files={"file": ("cells.tif", (Path(ROOT) / "examples/cells/cells_16bit.tif").read_bytes(), "image/tiff")},
    )
    assert r.status_code == 200, r.text
    got, want = r.json()["objects"], as_tiff.json()["objects"]
    assert len(got) == len(want) and [o["mean_intensity"] for o in got] == [o["mean_intensity"] for o in want]

    la = np.stack([noisy[..., 0], np.full(noisy.shape[:2], 40000.0)], -1).astype(np.uint16)
    out = deep_png(client.post("/denoise", files={"file": ("la.png", _png16(la), "image/png")}).content, 10**6)
    assert out.shape == (128, 128, 2) and (out[..., 1] == 40000).all()


def test_the_colour_profile_and_exif_come_back_with_the_denoised_image(client) -> None:
    """A photo's ICC profile (Display P3 in every iPhone photo, Adobe RGB from cameras) says what its numbers
    mean; an answer without it is shown in other colours by colour-managed viewers. /denoise answers carry the
    upload's profile (PNG, JPEG, TIFF and 16-bit PNG in, PNG / TIFF / JSON out) and, in PNGs, its EXIF without
    the orientation (the pixels come back upright). No profile in, none out."""
    from PIL import ExifTags, ImageCms

    from service.images import png_exif, png_icc

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    a = (np.random.default_rng(2).random((48, 64, 3)) * 255).astype(np.uint8)
    uploads = {fmt: encode(a, fmt, icc_profile=icc) for fmt in ("PNG", "JPEG", "TIFF")}
    exif = Image.Exif()
    exif[ExifTags.Base.Make], exif[ExifTags.Base.Orientation] = "PhoneCo", 6  # shot with the phone turned
    uploads["JPEG + EXIF"] = encode(a, "JPEG", icc_profile=icc, exif=exif.tobytes())
    buf = io.BytesIO()
    tifffile.imwrite(buf, a, photometric="rgb", iccprofile=icc)
    uploads["TIFF (tifffile)"] = buf.getvalue()
    import imagecodecs

    from service.images import png_with_meta

    uploads["16-bit PNG + EXIF"] = png_with_meta(
        bytes(imagecodecs.png_encode(a.astype(np.uint16) * 257)), icc, exif.tobytes()
    )
    assert png_icc(uploads["16-bit PNG + EXIF"]) == icc and png_exif(uploads["16-bit PNG + EXIF"]) == exif.tobytes()
    for name, body in uploads.items():
        for output in ("png", "tiff", "json"):
            r = client.post(f"/denoise?output={output}", files={"file": ("photo", body, "application/octet-stream")})
            assert r.status_code == 200, (name, output, r.text)
            content = base64.b64decode(r.json()["image"]) if output == "json" else r.content
            if output == "tiff":
                with tifffile.TiffFile(io.BytesIO(content)) as tf:
                    got = bytes(tf.pages[0].tags[34675].value)
            else:
                got = Image.open(io.BytesIO(content)).info.get("icc_profile") or png_icc(content)
            assert got == icc, (name, output)
            if "EXIF" in name and output != "tiff":
                tags = dict(Image.open(io.BytesIO(content)).getexif())
                assert tags.get(ExifTags.Base.Make) == "PhoneCo", (name, output, tags)
                assert ExifTags.Base.Orientation not in tags, (name, output, tags)
    plain = client.post("/denoise", files={"file": ("photo.png", encode(a, "PNG"), "image/png")}).content
    assert "icc_profile" not in Image.open(io.BytesIO(plain)).info and png_icc(plain) is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_16_bit_png_is_turned_upright_as_pillow_turns_an_8_bit_one(orientation: int) -> None:
    import imagecodecs
    from PIL import ExifTags, ImageOps

    from service.images import deep_png, png_with_meta

    a = (np.random.default_rng(orientation).random((5, 7, 3)) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(encode(a, "PNG", exif=exif.tobytes())))))
    deep = png_with_meta(bytes(imagecodecs.png_encode(a.astype(np.uint16) * 257)), None, exif.tobytes())
    np.testing.assert_array_equal(deep_png(deep, 10**6), want.astype(np.uint16) * 257)
