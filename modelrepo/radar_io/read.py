"""Which format a file is (by its first bytes), reading every file of a request, and JSON frames."""

from __future__ import annotations

import numpy as np

from modelrepo.errors import InputError, plain
from modelrepo.preprocess import PNG_MAGIC, TIFF_MAGIC
from modelrepo.radar_io.arrays import read_npy, read_npz, read_png
from modelrepo.radar_io.frames import (
    OPERA_GAIN,
    OPERA_NODATA,
    OPERA_OFFSET,
    RadarFrames,
    RadarInputError,
    _frames_of,
    _unit_of,
    check_array,
    parse_time,
)
from modelrepo.radar_io.geotiff import read_geotiff
from modelrepo.radar_io.netcdf import read_netcdf
from modelrepo.radar_io.odim import is_odim, read_odim

NPY_MAGIC, ZIP_MAGIC, HDF5_MAGIC = b"\x93NUMPY", b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"
NETCDF3_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")


def sniff(data: bytes) -> str:
    if data.startswith(NPY_MAGIC):
        return "npy"
    if data.startswith(ZIP_MAGIC):
        return "npz"
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(HDF5_MAGIC):
        return "hdf5"
    if data[:4] in NETCDF3_MAGIC:
        return "netcdf"
    if data[:4] in TIFF_MAGIC:
        return "tiff"
    raise RadarInputError(
        "unsupported_format", "not a .npy, .npz, PNG, (Geo)TIFF, ODIM HDF5 or NetCDF file (judged by its first bytes)"
    )


def read_file(data: bytes, name: str, out: RadarFrames, unit: str, png: tuple[float, float, float]) -> None:
    """Append the frames of one uploaded file to ``out``. A file its format's library cannot read
    (a corrupt HDF5, NetCDF, zip or PNG raises whatever that library raises) is the caller's
    ``invalid_file``, never a server error."""
    kind = sniff(data)
    try:
        _read(kind, data, name, out, unit, png)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a library's failure on these bytes: the file is broken
        raise RadarInputError("invalid_file", f"{name}: the {kind} file cannot be read: {plain(exc)}") from None


def _read(kind: str, data: bytes, name: str, out: RadarFrames, unit: str, png: tuple[float, float, float]) -> None:
    if kind == "npy":
        read_npy(data, name, unit, out)
    elif kind == "npz":
        read_npz(data, name, unit, out)
    elif kind == "png":
        read_png(data, name, *png, out)
    elif kind == "netcdf":
        read_netcdf(data, name, out)
    elif kind == "tiff":
        read_geotiff(data, name, unit, png, out)
    else:  # HDF5: ODIM or NetCDF-4
        try:
            odim = is_odim(data)
        except OSError as exc:
            raise RadarInputError("invalid_hdf5", f"{name}: HDF5 cannot be read: {plain(exc)}") from None
        if odim:
            read_odim(data, name, out)
        else:
            read_netcdf(data, name, out)


def read_frames(
    files: list[tuple[str, bytes]],
    input_unit: str = "dBZ",
    png_gain: float = OPERA_GAIN,
    png_offset: float = OPERA_OFFSET,
    png_nodata: float = OPERA_NODATA,
) -> RadarFrames:
    """Frames of every file, in the given order (files with times are sorted by them later)."""
    out = RadarFrames([], [], [])
    for name, data in files:
        read_file(data, name, out, input_unit, (png_gain, png_offset, png_nodata))
    return out


def frames_from_json(payload: dict, input_unit: str) -> RadarFrames:
    """``{"frames": [[[...]]], "timestep_minutes": 6, "unit": "dBZ", "timestamps": [...], "metadata": {...}}``;
    null marks no data."""
    frames = payload.get("frames")
    if not isinstance(frames, list) or not frames:
        raise RadarInputError("no_frames", 'JSON body needs "frames": a [T][H][W] list of numbers (null = no data)')
    try:
        a = np.array(frames, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise RadarInputError(
            "wrong_shape", '"frames" must be a rectangular [T][H][W] list of numbers (null = no data)'
        ) from None
    a = check_array(a, '"frames"')
    unit = _unit_of(payload["unit"]) if "unit" in payload else input_unit
    out = RadarFrames([], [], [])
    stamps = payload.get("timestamps")
    times = [None] * (a.shape[0] if a.ndim == 3 else 1)
    if stamps is not None:
        if not isinstance(stamps, list) or len(stamps) != len(times) or not all(isinstance(s, str) for s in stamps):
            raise RadarInputError("invalid_timestamps", '"timestamps" must list one ISO time string per frame')
        times = [parse_time(s) for s in stamps]
    out.add(_frames_of(a), unit, "json", times)
    step = payload.get("timestep_minutes")
    if step is not None:
        if not isinstance(step, int | float) or isinstance(step, bool) or step <= 0:
            raise RadarInputError("invalid_timestep", '"timestep_minutes" must be a positive number')
        out.timestep_minutes = float(step)
    no_rain = payload.get("no_rain")
    if no_rain is not None:
        if not isinstance(no_rain, int | float) or isinstance(no_rain, bool):
            raise RadarInputError("invalid_no_rain", '"no_rain" must be a number (dBZ)')
        out.no_rain = float(no_rain)
    meta = payload.get("metadata")
    if meta is not None:
        if not isinstance(meta, dict):
            raise RadarInputError("invalid_metadata", '"metadata" must be an object (pysteps metadata keys)')
        out.georef.update(meta)
    return out
