"""Property tests on every decoder the routes use: whatever bytes arrive, the decoder decodes them or
raises the caller's error (``ApiError`` 4xx or ``InputError``, which the routes answer in the one JSON
error shape) - never anything else, which would be a 500.

Inputs: valid files of every format we read, truncated, with bytes overwritten, spliced with random
tails, and plain random bytes; JSON documents of any shape for the JSON decoders. The example count
is ``CONVSERVE_FUZZ_EXAMPLES`` per decoder (``make fuzz`` raises it)."""

from __future__ import annotations

import io
import json
import os
from datetime import datetime
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from modelrepo.card import ModelCard
from modelrepo.errors import InputError
from modelrepo.radar_io import frames_from_json, read_frames, write_odim
from service.errors import ApiError
from service.images import open_image
from service.tasks import classify, denoise, nowcast, segment
from service.v2 import parse_infer
from tests.conftest import MODELS
from tests.radar_files import geotiff_frame, npy_bytes, png_frame, write_netcdf_frame

EXAMPLES = int(os.environ.get("CONVSERVE_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("CONVSERVE_FUZZ_RANDOM") != "1",  # make test: the same cases every run
    suppress_health_check=list(HealthCheck),
)
MAX_PIXELS = 4_000_000


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _image_seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    gray = Image.fromarray(rng.integers(0, 255, (24, 24), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 255, (16, 16, 4), dtype=np.uint8), "RGBA")
    wide = Image.fromarray(rng.integers(0, 65535, (16, 16)).astype(np.uint16))
    return [
        _encode(gray, "PNG"),
        _encode(rgba, "PNG"),
        _encode(gray.convert("RGB"), "JPEG", quality=80),
        _encode(wide, "TIFF"),
        _encode(gray.convert("P"), "GIF"),
        _encode(gray, "BMP"),
        _encode(gray.convert("RGB"), "WEBP"),
        _encode(gray.convert("RGB"), "AVIF", quality=80),  # its decoder raises RuntimeError on broken data
        _encode(gray.convert("RGB"), "HEIF", quality=80),  # read through pillow-heif (service.images)
        bytes(imagecodecs.png_encode(rng.integers(0, 65535, (12, 12, 3)).astype(np.uint16))),  # 48-bit PNG
    ]


def _radar_seeds(tmp: Path) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(1)
    frame = rng.uniform(0, 50, (16, 16)).astype(np.float32)
    odim = tmp / "f.h5"
    write_odim(odim, frame, datetime(2026, 7, 1, 12, 0))
    nc = write_netcdf_frame(tmp / "f.nc", frame, datetime(2026, 7, 1, 12, 0))
    buf = io.BytesIO()
    np.savez(buf, frames=np.stack([frame] * 3))
    return [
        ("f.h5", odim.read_bytes()),
        ("f.nc", nc.read_bytes()),
        ("f.npy", npy_bytes(np.stack([frame] * 3))),
        ("f.npz", buf.getvalue()),
        ("f.png", png_frame(frame)),
        ("f.tif", geotiff_frame(frame, datetime(2026, 7, 1, 12, 0))),
    ]


def mutations(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """Valid files truncated, overwritten in places, spliced with random tails; and random bytes."""

    def overwrite(seed: bytes, edits: list[tuple[float, int]]) -> bytes:
        b = bytearray(seed)
        for where, value in edits:
            b[int(where * (len(b) - 1))] = value
        return bytes(b)

    seed = st.sampled_from(seeds)
    return st.one_of(
        st.tuples(seed, st.floats(0, 1)).map(lambda t: t[0][: int(t[1] * len(t[0]))]),
        st.builds(overwrite, seed, st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=12)),
        st.tuples(seed, st.integers(0, 64), st.binary(max_size=512)).map(lambda t: t[0][: t[1]] + t[2]),
        st.binary(max_size=2048),
    )


def caller_error_or_result(fn, *args) -> object:
    """fn(*args), or None when it raises the caller's error; any other exception fails the test."""
    try:
        return fn(*args)
    except ApiError as exc:
        assert 400 <= exc.status < 500, (exc.status, exc.message)
        assert " at 0x" not in exc.message, exc.message  # no Python object reprs
    except InputError as exc:
        assert " at 0x" not in exc.message, exc.message
    return None


CARDS = {name: ModelCard.load(MODELS / name / "card.json") for name in ("lenet5_digits", "unet_nowcast")}
IMAGES = mutations(_image_seeds())


@FUZZ
@given(IMAGES, st.sampled_from(["auto", "true", "false"]))
def test_classify_decoder(data: bytes, invert: str) -> None:
    caller_error_or_result(classify.decode, [data], CARDS["lenet5_digits"], MAX_PIXELS, invert)


@FUZZ
@given(IMAGES)
def test_segment_decoder(data: bytes) -> None:
    caller_error_or_result(segment.decode, data, MAX_PIXELS)


@FUZZ
@given(IMAGES)
def test_denoise_decoder(data: bytes) -> None:
    caller_error_or_result(denoise.decode, data, MAX_PIXELS, open_image)


@pytest.fixture(scope="module")
def radar_seeds(tmp_path_factory) -> list[tuple[str, bytes]]:
    return _radar_seeds(tmp_path_factory.mktemp("radar"))


def test_radar_file_decoders(radar_seeds) -> None:
    names = [n for n, _ in radar_seeds]

    @FUZZ
    @given(st.sampled_from(names), mutations([b for _, b in radar_seeds]))
    def run(name: str, data: bytes) -> None:
        frames = caller_error_or_result(read_frames, [(name, data)] * 3)
        if frames is not None:  # decoded: the route's next step must also answer in the caller's terms
            caller_error_or_result(nowcast.prepare, frames, CARDS["unet_nowcast"], None, None, (None, None), MAX_PIXELS)

    run()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=40,
)
FRAMES = st.fixed_dictionaries(
    {
        "frames": st.one_of(
            JSON, st.lists(st.lists(st.lists(st.floats() | st.none(), min_size=1, max_size=4), max_size=4), max_size=4)
        )
    },
    optional={"unit": JSON, "timestamps": JSON, "timestep_minutes": JSON, "metadata": JSON, "no_rain": JSON},
)


@FUZZ
@given(st.one_of(FRAMES, st.dictionaries(st.text(max_size=10), JSON, max_size=5)))
def test_json_frames_decoder(payload: dict) -> None:
    frames = caller_error_or_result(frames_from_json, payload, "dBZ")
    if frames is not None:
        caller_error_or_result(nowcast.prepare, frames, CARDS["unet_nowcast"], None, None, (None, None), MAX_PIXELS)


def _v2_seeds() -> list[bytes]:
    x = np.arange(6, dtype=np.float32)
    tensor = {"name": "input", "datatype": "FP32", "shape": [1, 6]}
    plain = json.dumps({"inputs": [tensor | {"data": x.tolist()}]}).encode()
    head = json.dumps({"inputs": [tensor | {"parameters": {"binary_data_size": 24}}]}).encode()
    return [plain, head + x.tobytes()]


@FUZZ
@given(mutations(_v2_seeds()), st.one_of(st.none(), st.integers(-5, 400).map(str), st.text(max_size=6)))
def test_v2_infer_decoder(body: bytes, header_length: str | None) -> None:
    caller_error_or_result(parse_infer, body, header_length)


@FUZZ
@given(st.dictionaries(st.sampled_from(["inputs", "outputs", "id", "parameters"]), JSON, max_size=4))
def test_v2_infer_decoder_on_any_json(doc: dict) -> None:
    caller_error_or_result(parse_infer, json.dumps(doc).encode(), None)
