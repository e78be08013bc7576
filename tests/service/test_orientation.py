"""Phone photos carry an EXIF orientation: viewers turn the pixels upright, and so does every endpoint, so
the answer lines up with what the caller sees (``service.images.upright``)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from training.data.cells_alt import make_alt_cell_dataset

EX = Path(__file__).resolve().parents[2] / "examples"
SIDEWAYS = 6  # EXIF: the stored pixels are to be turned 90 degrees clockwise for display


def _png(img: Image.Image, orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="PNG", exif=exif.tobytes())
    return buf.getvalue()


def _sideways(img: Image.Image) -> bytes:
    """The upright image stored as a camera held sideways would store it, with the tag that undoes that."""
    return _png(img.transpose(Image.Transpose.ROTATE_90), SIDEWAYS)


def _post(client, endpoint: str, data: bytes, query: str = ""):
    r = client.post(f"/{endpoint}{query}", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    return r


def test_a_sideways_digit_photo_is_read_upright(client) -> None:
    digit = Image.open(EX / "digits" / "digit_7_white_on_black.png")
    upright = _post(client, "classify", _png(digit)).json()["results"][0]["predictions"][0]
    turned = _post(client, "classify", _sideways(digit)).json()["results"][0]["predictions"][0]
    assert turned == upright and upright["label"] == "7"


def test_denoised_and_segmented_answers_line_up_with_the_upright_image(client) -> None:
    noisy = Image.open(EX / "denoise" / "noisy_camera_s25.png").crop((0, 0, 160, 96))
    a = _post(client, "denoise", _png(noisy), "?output=png").content
    b = _post(client, "denoise", _sideways(noisy), "?output=png").content
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(a))), np.asarray(Image.open(io.BytesIO(b))))
    assert Image.open(io.BytesIO(b)).size == (160, 96)
    cells = Image.fromarray(make_alt_cell_dataset(1, seed=31)[0].image.astype(np.uint16)).crop((0, 0, 160, 112))
    a = tifffile.imread(io.BytesIO(_post(client, "segment", _png(cells), "?output=labels").content))
    b = tifffile.imread(io.BytesIO(_post(client, "segment", _sideways(cells), "?output=labels").content))
    assert a.shape == b.shape == (112, 160) and np.array_equal(a > 0, b > 0) and a.max() == b.max() > 0
