"""Radar frames without torch: units (dBZ <-> mm/h by a Z-R relation) and the nowcaster's scaling.

Z = a R^b (Z in mm^6 m^-3, R in mm/h), dBZ = 10 log10 Z; Marshall-Palmer a = 200, b = 1.6 by
default. Reflectivity below the card's ``rain_threshold`` is no rain: 0 mm/h, and ``zerovalue`` in
dBZ. No data (outside radar coverage) is NaN throughout - never the same as no rain.
"""

from __future__ import annotations

import numpy as np

from modelrepo.card import RadarSpec

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
    return ((d - spec.zerovalue) / spec.scale_dbz).astype(np.float32)


def from_network(y: np.ndarray, spec: RadarSpec) -> np.ndarray:
    """The network's values -> dBZ; below the rain threshold -> zerovalue."""
    d = spec.zerovalue + spec.scale_dbz * np.asarray(y, np.float32)
    return np.where(d < spec.rain_threshold, spec.zerovalue, np.minimum(d, spec.max_dbz)).astype(np.float32)


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


def rollout_numpy(run, x: np.ndarray, steps: int) -> np.ndarray:
    """(B, frames_in, H, W) network values -> (B, steps, H, W): the same rollout as training's, for any
    ``run`` (an ONNX Runtime session's, say) mapping (B, frames_in, H, W) to (B, frames_out, H, W)."""
    seq, n_in, out, have = x, x.shape[1], [], 0
    while have < steps:
        y = run(np.ascontiguousarray(seq[:, -n_in:]))
        out.append(y)
        have += y.shape[1]
        seq = np.concatenate([seq[:, -n_in:], y], axis=1)
    return np.concatenate(out, axis=1)[:, :steps]
