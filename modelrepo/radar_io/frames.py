"""Radar frames as they were read: values, times, units, georeferencing; the checks every reader shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from modelrepo.errors import InputError

# the OPERA/ODIM 8-bit DBZH scaling: dBZ = GAIN * v + OFFSET (0..255 -> -32..95.5 dBZ), v = NODATA: no
# data, v = UNDETECT: measured, no echo. The default for PNG frames in and 8-bit ODIM out.
OPERA_GAIN, OPERA_OFFSET, OPERA_NODATA, OPERA_UNDETECT = 0.5, -32.0, 255, 0

DBZ_UNITS = {"dbz", "dbz(h)"}
RATE_UNITS = {"mm/h", "mm h-1", "mm/hr", "mm hr-1", "mm.h-1", "mm h**-1"}
DBZ_NAMES = ("equivalent_reflectivity_factor", "dbzh", "dbz", "reflectivity", "th")
RATE_NAMES = ("rainfall_rate", "precip_intensity", "precipitation_rate", "rate", "rr", "precip")


class RadarInputError(InputError):
    """The client's frames cannot be used; ``code`` is the API error code, the message says why."""


@dataclass
class RadarFrames:
    frames: list[np.ndarray]  # float32 (H, W), in ``units[i]``, NaN = no data
    units: list[str]  # "dBZ" | "mm/h" per frame
    times: list[datetime | None]
    georef: dict = field(default_factory=dict)
    zr: tuple[float, float] | None = None  # the file's own Z-R relation, if it states one
    timestep_minutes: float | None = None  # stated by the input itself (JSON, npz)
    no_rain: float | None = None  # dBZ the file says means "no rain" (ODIM undetect, npz/JSON ``no_rain``)
    formats: list[str] = field(default_factory=list)

    def add(self, frames: list[np.ndarray], unit: str, fmt: str, times: list[datetime | None] | None = None) -> None:
        """Append frames of one unit and format, with their times (None: unknown)."""
        for f, t in zip(frames, times or [None] * len(frames)):
            self.frames.append(f)
            self.units.append(unit)
            self.times.append(t)
            self.formats.append(fmt)


def _scalar(v):
    """A JSON-safe Python value from an HDF5/NetCDF attribute."""
    if isinstance(v, bytes | np.bytes_):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return [_scalar(x) for x in v.tolist()] if v.ndim else _scalar(v.item())
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def _unit_of(text: object, default: str | None = None) -> str:
    if text is not None and not isinstance(text, str):
        raise RadarInputError("unsupported_unit", f"unit must be a string (dBZ or mm/h), not {type(text).__name__}")
    t = (text or "").strip().lower()
    if t in DBZ_UNITS:
        return "dBZ"
    if t in RATE_UNITS:
        return "mm/h"
    if t in ("kg m-2 s-1", "kg m**-2 s**-1"):
        return "kg m-2 s-1"
    if default is not None and not t:
        return default
    raise RadarInputError("unsupported_unit", f"unit {text!r} is not dBZ or mm/h")


MAX_DECODED_BYTES = 1 << 28  # 256 MiB: a compressed array (npz, HDF5, NetCDF-4) may not unpack to more


def check_decoded_size(shape: tuple[int, ...], itemsize: int, what: str) -> None:
    """Refuse a compressed array whose header declares more than ``MAX_DECODED_BYTES`` (a
    decompression bomb) before unpacking it."""
    n = int(np.prod(shape, dtype=np.float64)) * itemsize
    if n > MAX_DECODED_BYTES:
        raise RadarInputError(
            "array_too_large", f"{what} declares {list(shape)} values ({n:,} bytes; limit {MAX_DECODED_BYTES:,})"
        )


def check_array(a: np.ndarray, what: str) -> np.ndarray:
    """float32 frames from a numeric array of 2 or 3 dims; refuses other dtypes."""
    if a.dtype.kind not in "fiu":
        raise RadarInputError("wrong_dtype", f"{what} has dtype {a.dtype}; frames must be numbers (float or integer)")
    if a.ndim not in (2, 3) or min(a.shape[-2:]) < 1:
        raise RadarInputError("wrong_shape", f"{what} has shape {a.shape}; expected (T, H, W) or (H, W)")
    if a.dtype.kind == "f" and a.dtype.itemsize > 4 and np.nanmax(np.abs(a), initial=0.0) > np.finfo(np.float32).max:
        raise RadarInputError("invalid_values", f"{what} holds values beyond the float32 range")
    a = a.astype(np.float32)
    if np.isinf(a).any():
        raise RadarInputError("invalid_values", f"{what} contains infinite values (use NaN for no data)")
    return a


def _frames_of(a: np.ndarray) -> list[np.ndarray]:
    return [f for f in a] if a.ndim == 3 else [a]


def parse_time(s: str) -> datetime:
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise RadarInputError("invalid_timestamps", f"timestamp {s!r} is not ISO 8601") from None
