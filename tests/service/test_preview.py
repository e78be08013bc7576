"""POST /preview: the files browsers cannot draw (16-bit / float / multi-page TIFF, HEIC) as 8-bit PNGs, for the
web page to show what a user sent."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
from PIL import Image

from tests.conftest import ROOT


def _tiff(a: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, a, **kw)
    return buf.getvalue()


def _png(r) -> np.ndarray:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "PNG" and img.mode in ("L", "RGB")
    return np.asarray(img)


def test_a_16_bit_fluorescence_tiff_is_stretched_to_its_own_range(client) -> None:
    body = (ROOT / "examples" / "cells" / "cells_16bit.tif").read_bytes()
    raw = tifffile.imread(io.BytesIO(body))
    assert raw.dtype == np.uint16 and raw.max() < 65535 // 4  # dark when shown as 16 bits: a 12-bit range
    r = client.post("/preview", files={"file": ("cells.tif", body, "image/tiff")})
    a = _png(r)
    assert a.shape == raw.shape and a.dtype == np.uint8
    assert a.min() == 0 and a.max() == 255  # stretched, not divided by 65535
    clipped = np.clip(raw, *np.percentile(raw, (0.1, 99.9)))  # its hot pixels saturate, as in Fiji's auto contrast
    assert np.corrcoef(a.ravel(), clipped.ravel())[0, 1] > 0.99  # the same picture
    assert r.headers["x-source-dtype"] == "uint16" and r.headers["x-source-format"] == "TIFF"


def test_a_float_stack_shows_its_first_page_and_says_how_many(client) -> None:
    rng = np.random.default_rng(0)
    stack = rng.normal(100.0, 5.0, (5, 40, 60)).astype(np.float32)
    stack[0, 10:20, 10:30] += 200  # a bright block on the first page only
    r = client.post("/preview", files={"file": ("stack.tif", _tiff(stack, photometric="minisblack"), "image/tiff")})
    a = _png(r)
    assert a.shape == (40, 60) and r.headers["x-pages"] == "5"
    assert a[10:20, 10:30].mean() > 200 > 60 > a[25:, 35:].mean()


def test_heic_and_large_images_shrink_to_max_side(client) -> None:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    rgb = (np.random.default_rng(1).random((300, 500, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "HEIF", quality=90)
    a = _png(client.post("/preview?max_side=200", files={"file": ("p.heic", buf.getvalue(), "image/heic")}))
    assert a.shape == (120, 200, 3)


def test_what_is_not_an_image_gets_a_json_error(client) -> None:
    r = client.post("/preview", files={"file": ("x.tif", b"II*\x00garbage", "image/tiff")})
    assert 400 <= r.status_code < 500
    assert r.json()["error"]["message"]
    assert client.get("/health/ready").status_code == 200


def test_a_result_can_be_shown_in_its_inputs_range(client) -> None:
    """The page shows a denoised float TIFF with the black and white levels of the noisy one (else each would
    be stretched to its own range and the smoother result would look as contrasty as the noise)."""
    rng = np.random.default_rng(2)
    noisy = rng.normal(0.5, 0.2, (32, 32)).astype(np.float32)
    smooth = np.full((32, 32), 0.5, np.float32) + np.linspace(-0.05, 0.05, 32, dtype=np.float32)
    first = client.post("/preview", files={"file": ("n.tif", _tiff(noisy), "image/tiff")})
    low, high = (float(v) for v in first.headers["x-display-range"].split(","))
    assert low == pytest.approx(np.percentile(noisy, 0.1), abs=1e-3) and high > 1.0  # float values as stored
    own = _png(client.post("/preview", files={"file": ("s.tif", _tiff(smooth), "image/tiff")}))
    kept = client.post(f"/preview?low={low}&high={high}", files={"file": ("s.tif", _tiff(smooth), "image/tiff")})
    assert kept.headers["x-display-range"] == first.headers["x-display-range"]
    a = _png(kept)
    assert own.max() - own.min() > 250 and a.max() - a.min() < 40  # its own stretch vs the input's
    assert a.mean() == pytest.approx(255 * (0.5 - low) / (high - low), abs=3)
    for bad in ("low=1", "low=2&high=1", "low=-inf&high=inf"):
        r = client.post(f"/preview?{bad}", files={"file": ("s.tif", _tiff(smooth), "image/tiff")})
        assert r.status_code == 422 and "low" in r.json()["error"]["message"], bad
