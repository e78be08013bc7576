"""``.npy`` / ``.npz`` arrays and gray PNG frames (OPERA 8-bit DBZH scaling by default)."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime

import numpy as np

from modelrepo.errors import plain
from modelrepo.radar_io.frames import (
    RadarFrames,
    RadarInputError,
    _frames_of,
    _unit_of,
    check_array,
    check_decoded_size,
    parse_time,
)


def _load_npy(data: bytes, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise RadarInputError("pickle_refused", f"{name}: pickled (object) arrays are refused") from None
        raise RadarInputError("invalid_npy", f"{name}: not a readable .npy array: {plain(exc)}") from None
    except (OSError, EOFError) as exc:
        raise RadarInputError("invalid_npy", f"{name}: not a readable .npy array: {plain(exc)}") from None


def read_npy(data: bytes, name: str, unit: str, out: RadarFrames) -> None:
    a = check_array(_load_npy(data, name), name)
    out.add(_frames_of(a), unit, "npy")


def _check_npz_members(data: bytes, name: str) -> None:
    """Every member's declared shape, read from its .npy header before anything is unpacked."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                if version in read:  # other versions: np.load reads (or refuses) them as usual
                    shape, _, dtype = read[version](f)
                    check_decoded_size(shape, dtype.itemsize, f"{name}[{info.filename}]")


def read_npz(data: bytes, name: str, unit: str, out: RadarFrames) -> None:
    try:
        _check_npz_members(data, name)
        z = np.load(io.BytesIO(data), allow_pickle=False)
        keys = list(z.keys())
        arrays = {k: z[k] for k in keys}
    except RadarInputError:  # an InputError is a ValueError: keep the size check's own answer
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise RadarInputError("pickle_refused", f"{name}: pickled (object) arrays are refused") from None
        raise RadarInputError("invalid_npz", f"{name}: not a readable .npz archive: {plain(exc)}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise RadarInputError("invalid_npz", f"{name}: not a readable .npz archive: {plain(exc)}") from None
    known = {"frames", "timestep_minutes", "timestamps", "metadata", "unit", "no_rain"}
    data_keys = ["frames"] if "frames" in arrays else [k for k in keys if k not in known]
    if len(data_keys) != 1:
        raise RadarInputError("invalid_npz", f"{name}: put the frames under 'frames' (found {keys})")
    a = check_array(arrays[data_keys[0]], f"{name}[{data_keys[0]}]")
    if "unit" in arrays:
        unit = _unit_of(str(arrays["unit"]))
    if "timestep_minutes" in arrays:
        out.timestep_minutes = float(arrays["timestep_minutes"])
    if "no_rain" in arrays:
        out.no_rain = float(arrays["no_rain"])
    if "metadata" in arrays:
        try:
            meta = json.loads(str(arrays["metadata"]))
        except json.JSONDecodeError:
            raise RadarInputError("invalid_metadata", f"{name}: 'metadata' must be a JSON string") from None
        if not isinstance(meta, dict):
            raise RadarInputError("invalid_metadata", f"{name}: 'metadata' must be a JSON object")
        out.georef.update(meta)
    times: list[datetime | None] = [None] * (a.shape[0] if a.ndim == 3 else 1)
    if "timestamps" in arrays:
        stamps = [str(s) for s in np.atleast_1d(arrays["timestamps"])]
        if len(stamps) != len(times):
            raise RadarInputError("invalid_timestamps", f"{name}: {len(stamps)} timestamps for {len(times)} frames")
        times = [parse_time(s) for s in stamps]
    out.add(_frames_of(a), unit, "npz", times)


def read_png(data: bytes, name: str, gain: float, offset: float, nodata: float, out: RadarFrames) -> None:
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the client's file
        raise RadarInputError("invalid_png", f"{name}: PNG cannot be decoded: {plain(exc)}") from None
    if img.mode not in ("L", "I;16", "I;16B", "I"):
        raise RadarInputError(
            "unsupported_png",
            f"{name}: a {img.mode} PNG; radar PNGs must be 8- or 16-bit gray values (dBZ = gain * v + offset), "
            "not a colour picture",
        )
    v = np.asarray(img).astype(np.float32)
    dbz = gain * v + offset
    dbz[v == nodata] = np.nan
    out.add([dbz.astype(np.float32)], "dBZ", "png")
