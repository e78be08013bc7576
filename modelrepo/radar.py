"""Radar frames without torch: units (dBZ <-> mm/h by a Z-R relation) and the nowcaster's scaling.

Z = a R^b (Z in mm^6 m^-3, R in mm/h), dBZ = 10 log10 Z; Marshall-Palmer a = 200, b = 1.6 by
default. Reflectivity below the card's ``rain_threshold`` is no rain: 0 mm/h, and ``zerovalue`` in
dBZ. No data (outside radar coverage) is NaN throughout - never the same as no rain.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import numpy as np

from modelrepo.card import RadarSpec
from modelrepo.errors import InputError
from modelrepo.preprocess import pad_to_multiple

MARSHALL_PALMER = (200.0, 1.6)


def dbz_to_rate(dbz: np.ndarray, a: float, b: float, threshold: float) -> np.ndarray:
    """mm/h; 0 below ``threshold`` dBZ; NaN stays NaN."""
    dbz = np.asarray(dbz, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        rate = (10.0 ** (dbz / 10.0) / a) ** (1.0 / b)
        return np.where(dbz < threshold, 0.0, rate).astype(np.float32)


def rate_to_dbz(rate: np.ndarray, a: float, b: float, zerovalue: float, threshold: float) -> np.ndarray:
    """dBZ; rates that give less than ``threshold`` dBZ (0 mm/h included) become ``zerovalue``; NaN stays."""
    rate = np.asarray(rate, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        dbz = 10.0 * np.log10(a * np.maximum(rate, 0.0) ** b)
        # 1e-4 dBZ of slack: a threshold value sent through float32 mm/h comes back a hair below it
        dbz = np.where(dbz < threshold, np.where(dbz > threshold - 1e-4, threshold, zerovalue), dbz)
        return np.where(np.isnan(rate), np.nan, dbz).astype(np.float32)


def to_network(dbz: np.ndarray, spec: RadarSpec) -> np.ndarray:
    """dBZ -> the network's scale: no rain and no data are 0, ``scale_dbz`` dBZ above zerovalue is 1."""
    d = np.nan_to_num(np.asarray(dbz, np.float32), nan=spec.zerovalue)
    d = np.where(d < spec.rain_threshold, spec.zerovalue, np.minimum(d, spec.max_dbz))
    return spec.net_value(d).astype(np.float32)


def from_network(y: np.ndarray, spec: RadarSpec) -> np.ndarray:
    """The network's values -> dBZ: from the card's rain decision value up, rain (at least the rain threshold,
    at most max_dbz); below it, zerovalue. Without a decision value that is the rain threshold itself."""
    d = spec.zerovalue + spec.scale_dbz * np.asarray(y, np.float32)
    rain = np.clip(d, spec.rain_threshold, spec.max_dbz)
    return np.where(d < spec.decision_dbz, spec.zerovalue, rain).astype(np.float32)


# reflectivity colour scale (NWS-like steps of 5 dBZ from the rain threshold up); no rain white, no data gray
_LEVELS = np.array([10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60], np.float32)
_COLOURS = np.array(
    [
        [255, 255, 255],  # no rain
        [4, 233, 231],
        [1, 159, 244],
        [3, 0, 244],
        [2, 253, 2],
        [1, 197, 1],
        [0, 142, 0],
        [253, 248, 2],
        [229, 188, 0],
        [253, 149, 0],
        [253, 0, 0],
        [188, 0, 0],
    ],
    np.uint8,
)
NODATA_COLOUR = np.array([150, 150, 150], np.uint8)


def colorize(dbz: np.ndarray) -> np.ndarray:
    """(H, W) dBZ -> (H, W, 3) uint8 on a radar colour scale; NaN (no data) is gray."""
    idx = np.searchsorted(_LEVELS, np.nan_to_num(dbz, nan=-999.0), side="right")
    rgb = _COLOURS[idx]
    rgb[np.isnan(dbz)] = NODATA_COLOUR
    return rgb


async def rollout(infer, x: np.ndarray, steps: int) -> np.ndarray:
    """(B, frames_in, H, W) network values -> (B, steps, H, W): the network fed its own outputs, the
    same rollout as training's. ``infer`` is a coroutine (B, frames_in, H, W) -> (B, frames_out, H, W):
    the service's batcher, or an ONNX Runtime session through ``rollout_numpy``."""
    seq, n_in, out, have = x, x.shape[1], [], 0
    while have < steps:
        y = await infer(np.ascontiguousarray(seq[:, -n_in:]))
        out.append(y)
        have += y.shape[1]
        seq = np.concatenate([seq[:, -n_in:], y], axis=1)
    return np.concatenate(out, axis=1)[:, :steps]


def rollout_numpy(run, x: np.ndarray, steps: int) -> np.ndarray:
    """``rollout`` for a plain function ``run`` (an ONNX Runtime session's, say)."""

    async def infer(a: np.ndarray) -> np.ndarray:
        return run(a)

    return asyncio.run(rollout(infer, x, steps))


async def forecast_dbz(
    infer, dbz: np.ndarray, nodata: np.ndarray, spec: RadarSpec, multiple: int, steps: int
) -> np.ndarray:
    """(T, H, W) dBZ observations -> (steps, H, W) dBZ, NaN where there is no data. Padded with zeros
    (no rain: the outside is unknown and must not invent echoes) to the network's multiple and cropped
    back. With no echo anywhere there is nothing to move or grow: a dry forecast, the network not asked."""
    h, w = dbz.shape[1:]
    x = pad_to_multiple(to_network(dbz, spec)[None], multiple, mode="constant")
    if not x.any():
        out = np.full((steps, h, w), spec.zerovalue, np.float32)
    else:
        out = from_network((await rollout(infer, x, steps))[0, :, :h, :w], spec)
    out[:, nodata] = np.nan
    return out


NO_RAIN_FLOOR = -200.0  # dBZ; conventions in use: 0, -10, -15 (pysteps), -32 (OPERA 8-bit)


def detect_no_rain(dbz: np.ndarray, threshold: float) -> float | None:
    """The value an input uses for "no rain": among its finite values below the rain ``threshold``,
    the most common one when it holds at least half of them (0, -10, -15, -32 ... as conventions
    go), else the lowest; None when every pixel is rain or no data. Values below ``NO_RAIN_FLOOR``
    are no radar convention and take no part."""
    low = dbz[np.isfinite(dbz) & (dbz < threshold) & (dbz >= NO_RAIN_FLOOR)]
    if low.size == 0:
        return None
    values, counts = np.unique(np.round(low, 4), return_counts=True)
    top = int(np.argmax(counts))
    return float(values[top]) if counts[top] >= low.size / 2 else float(low.min())


def choose_no_rain(query: float | None, from_file: float | None, detected: float | None, spec: RadarSpec):
    """(value, source): the caller's ``no_rain`` first, then the file's, then the input's own, else
    the model's ``zerovalue``. InputError when the chosen value is not below the rain threshold."""
    for value, source in ((query, "query"), (from_file, "file"), (detected, "detected")):
        if value is not None:
            if not NO_RAIN_FLOOR <= value:
                raise InputError(
                    "invalid_no_rain",
                    f"no_rain = {value:g} dBZ from the {source} is below {NO_RAIN_FLOOR:g} dBZ: not a radar value",
                )
            if value >= spec.rain_threshold:
                raise InputError(
                    "invalid_no_rain",
                    f"no_rain = {value:g} dBZ from the {source} is not below the rain threshold "
                    f"({spec.rain_threshold:g} dBZ)",
                )
            return float(value), source
    return float(spec.zerovalue), "model"


def keep_no_rain(dbz: np.ndarray, no_rain: float, threshold: float) -> np.ndarray:
    """Every finite value below the rain threshold becomes ``no_rain``; NaN (no data) stays."""
    return np.where(np.isfinite(dbz) & (dbz < threshold), np.float32(no_rain), dbz).astype(np.float32)


def time_order(times: list) -> tuple[list[int], float | None]:
    """Indices that sort frames by time, and the time step in minutes (None for one frame);
    InputError when two frames share a time or the steps are uneven."""
    order = sorted(range(len(times)), key=lambda i: times[i])
    ordered = [times[i] for i in order]
    if len(set(ordered)) < len(ordered):
        raise InputError("duplicate_times", "two frames have the same time")
    gaps = {(b - a) / timedelta(minutes=1) for a, b in zip(ordered, ordered[1:])}
    if len(gaps) > 1:
        raise InputError("uneven_timesteps", f"frames are not evenly spaced: {sorted(gaps)} minutes apart")
    return order, (gaps.pop() if gaps else None)


def order_and_step(
    times: list, stated: tuple[float | None, float | None], spec: RadarSpec, model: str
) -> tuple[list[int], float, list[str]]:
    """Frame order (by time when every frame has one), the time step (from the times, or as stated by
    the input / the caller; all must agree and match the model's) and warnings. InputError otherwise."""
    order, step, warnings = list(range(len(times))), None, []
    if times and all(t is not None for t in times):
        order, step = time_order(times)
    elif any(t is not None for t in times):
        warnings.append("only some frames carry a time; the order received is used")
    for value, what in zip(stated, ("the input", "timestep_minutes")):
        if value is not None and step is not None and abs(value - step) > 1e-6:
            raise InputError(
                "timestep_conflict", f"{what} says {value:g} minutes; the frames' times are {step:g} apart"
            )
        step = value if step is None and value is not None else step
    if step is None:
        step = spec.timestep_minutes
        warnings.append(f"no time step given (timestep_minutes); assumed the model's {spec.timestep_minutes:g} minutes")
    if abs(step - spec.timestep_minutes) > 1e-6:
        lo, hi = spec.timestep_range_minutes or (spec.timestep_minutes, spec.timestep_minutes)
        if not (lo <= step <= hi and abs(step - round(step)) < 1e-6):
            verified = f"frames {spec.timestep_minutes:g} minutes apart" + (
                f" (or a whole number of minutes from {lo:g} to {hi:g})" if spec.timestep_range_minutes else ""
            )
            raise InputError(
                "timestep_mismatch",
                f"model {model} is verified on {verified}; these are {step:g} minutes apart. Resample them first.",
            )
        warnings.append(
            f"model {model} was trained on {spec.timestep_minutes:g}-minute steps; it forecasts in these frames' "
            f"{step:g}-minute steps (verified from {lo:g} to {hi:g} minutes on generated sequences)"
        )
    return order, step, warnings


ZR_A_RANGE, ZR_B_RANGE = (1.0, 1e5), (0.5, 10.0)  # Z = a R^b in use span a 20-2000, b 1-3


def _checked_zr(a: float, b: float, what: str) -> tuple[float, float]:
    if not (ZR_A_RANGE[0] <= a <= ZR_A_RANGE[1] and ZR_B_RANGE[0] <= b <= ZR_B_RANGE[1]):
        raise InputError(
            "invalid_zr",
            f"{what} = {a:g} / {b:g} is not a Z-R relation (a in {ZR_A_RANGE[0]:g}-{ZR_A_RANGE[1]:g}, "
            f"b in {ZR_B_RANGE[0]:g}-{ZR_B_RANGE[1]:g}; Marshall-Palmer is 200 / 1.6)",
        )
    return float(a), float(b)


def choose_zr(query: tuple[float | None, float | None], from_file: tuple[float, float] | None, spec: RadarSpec):
    """The Z-R relation to use and where it came from: the request, the file, else the model's default."""
    a, b = query
    if a is not None and b is not None:
        return _checked_zr(a, b, "zr_a / zr_b"), "query"
    if a is not None or b is not None:
        raise InputError("invalid_zr", "give both zr_a and zr_b, or neither")
    if from_file is not None:
        return _checked_zr(*from_file, "the file's zr_a / zr_b"), "file"
    return (spec.zr_a, spec.zr_b), "model default (Marshall-Palmer)"
