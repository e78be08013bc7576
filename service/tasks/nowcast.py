"""Nowcasting: frames in any accepted form -> the last three in dBZ -> rollout -> the forecast in the
unit asked for, with no-data pixels masked, rendered as JSON, npz, NetCDF, a PNG strip or a GIF."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from PIL import Image, ImageDraw

from modelrepo.card import ModelCard
from modelrepo.errors import InputError
from modelrepo.radar import (
    choose_no_rain,
    choose_zr,
    colorize,
    dbz_to_rate,
    detect_no_rain,
    forecast_dbz,
    keep_no_rain,
    order_and_step,
    rate_to_dbz,
)
from modelrepo.radar_io import RadarFrames, write_netcdf
from service.batcher import Timing
from service.registry import ModelState


def natural_key(s: str) -> list:
    """'frame2' before 'frame10'."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


@dataclass
class Prepared:
    dbz: np.ndarray  # (frames_in, H, W) dBZ, NaN = no data
    nodata: np.ndarray  # (H, W) bool: no data in any frame used
    timestep_minutes: float
    reference_time: datetime | None  # time of the last observation, when the input says
    zr: tuple[float, float]
    zr_source: str
    unit_in: str
    frames_received: int
    no_rain: float = 0.0  # dBZ the forecast uses for no rain: the input's own convention
    no_rain_source: str = "model"  # query | file | detected | model
    warnings: list[str] = field(default_factory=list)


def prepare(
    radar: RadarFrames,
    card: ModelCard,
    nodata: float | None,
    timestep_minutes: float | None,
    zr_query: tuple[float | None, float | None],
    max_pixels: int,
    no_rain: float | None = None,
) -> Prepared:
    """Check and order the frames, take the last ``frames_in``, convert them to dBZ. InputError otherwise."""
    spec = card.radar
    assert spec is not None
    frames, warnings = radar.frames, []
    need = spec.frames_in
    if len(frames) < need:
        raise InputError("too_few_frames", f"{len(frames)} frame(s) received; the model needs the last {need}")
    shapes = sorted({f.shape for f in frames})
    if len(shapes) > 1:
        raise InputError("unequal_shapes", f"frames differ in shape: {[list(s) for s in shapes]}")
    h, w = shapes[0]
    if h * w > max_pixels:
        raise InputError("frames_too_large", f"frames of {h}x{w} = {h * w:,} pixels (limit {max_pixels:,})")
    times = radar.times
    order, step, notes = order_and_step(times, (radar.timestep_minutes, timestep_minutes), spec, card.name)
    warnings += notes
    used = order[-need:]
    zr, zr_source = choose_zr(zr_query, radar.zr, spec)
    dbz = []
    for i in used:
        f = frames[i].astype(np.float32, copy=True)
        if nodata is not None:
            f[f == nodata] = np.nan
        if radar.units[i] == "mm/h":
            if np.nanmin(f, initial=0.0) < 0:
                raise InputError("invalid_values", "negative rain rates")
            f = rate_to_dbz(f, *zr, spec.zerovalue, spec.rain_threshold)
        dbz.append(f)
    stack = np.stack(dbz)
    nan = np.isnan(stack)
    if nan.all():
        raise InputError("no_data", f"the last {need} frames hold no data at all (every pixel is NaN / nodata)")
    units = {radar.units[i] for i in used}
    dbz_frames = [f for i, f in zip(used, dbz) if radar.units[i] != "mm/h"]
    detected = detect_no_rain(np.stack(dbz_frames), spec.rain_threshold) if dbz_frames else None
    value, source = choose_no_rain(no_rain, radar.no_rain, detected, spec)
    return Prepared(
        dbz=stack,
        nodata=nan.any(axis=0),
        timestep_minutes=step,
        reference_time=times[used[-1]],
        zr=zr,
        zr_source=zr_source,
        unit_in=units.pop() if len(units) == 1 else "dBZ",
        frames_received=len(frames),
        no_rain=value,
        no_rain_source=source,
        warnings=warnings,
    )


async def forecast(state: ModelState, p: Prepared, steps: int, timeout_s: float) -> tuple[np.ndarray, Timing]:
    """(steps, H, W) dBZ with NaN where there is no data; the shared rollout (``modelrepo/radar.py``)
    runs through the model's batcher, timings added up over its calls."""
    assert state.batcher is not None and state.card is not None and state.card.radar is not None
    totals = [0.0, 0.0, 0]

    async def infer(x: np.ndarray) -> np.ndarray:
        y, t = await state.batcher.infer(x, timeout_s)
        totals[0], totals[1], totals[2] = totals[0] + t.queue_s, totals[1] + t.inference_s, max(totals[2], t.batch_rows)
        return y

    spec = state.card.radar
    dbz = await forecast_dbz(infer, p.dbz, p.nodata, spec, state.card.input.pad_multiple, steps)
    return keep_no_rain(dbz, p.no_rain, spec.rain_threshold), Timing(totals[0], totals[1], int(totals[2]))


def in_unit(dbz: np.ndarray, unit: str, zr: tuple[float, float], threshold: float) -> np.ndarray:
    return dbz if unit == "dBZ" else dbz_to_rate(dbz, *zr, threshold)


def json_frames(a: np.ndarray) -> list:
    """Nested lists, 3 decimals, null for no data."""
    r = np.round(a.astype(np.float64), 3)
    return np.where(np.isnan(r), None, r).tolist()


def no_rain_value(p: Prepared, unit: str) -> float:
    """What the forecast holds where there is no rain: the input's convention in dBZ, 0 in mm/h."""
    return p.no_rain if unit == "dBZ" else 0.0


def npz_bytes(fc: np.ndarray, leads: list[int], mask: np.ndarray, unit: str, meta: dict, no_rain: float) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        forecast=fc.astype(np.float32),
        no_rain_value=np.float32(no_rain),
        lead_times_minutes=np.asarray(leads, np.int32),
        nodata_mask=mask,
        unit=np.str_(unit),
        metadata=np.str_(json.dumps(meta)),
    )
    return buf.getvalue()


SUMMARY_KEYS = ("lead_minutes", "cases", "grid", "methods", "targets")


def verification_summary(card: ModelCard) -> dict:
    """What a forecast carries of its model's verification: the held-out table (every method's scores per lead)
    and its targets; per regime, calibration and time-step tables (about 20 KB) stay in the card, at
    ``details``."""
    v = card.verification or {}
    return {k: v[k] for k in SUMMARY_KEYS if k in v} | {"details": f"/models/{card.name} (card.verification)"}


def netcdf_bytes(fc: np.ndarray, leads: list[int], unit: str, p: Prepared, georef: dict, card: ModelCard) -> bytes:
    attrs = {
        "source": f"ConvServe {card.name}",
        "zr_relation": f"Z = {p.zr[0]:g} R^{p.zr[1]:g}",
        "no_rain_value": no_rain_value(p, unit),
        "no_rain_source": p.no_rain_source,
        "verification": json.dumps(verification_summary(card)),
    }
    return write_netcdf(fc, [60.0 * m for m in leads], unit, georef, p.reference_time, attrs)


def _labelled(rgb: np.ndarray, label: str, scale: int) -> Image.Image:
    img = Image.fromarray(rgb).resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.NEAREST)
    canvas = Image.new("RGB", (img.width, img.height + 16), "white")
    canvas.paste(img, (0, 16))
    ImageDraw.Draw(canvas).text((3, 2), label, fill="black")
    return canvas


def picture_frames(last_obs_dbz: np.ndarray, fc_dbz: np.ndarray, leads: list[int]) -> list[Image.Image]:
    h, w = last_obs_dbz.shape
    scale = max(1, min(4, 256 // max(h, w)))
    pics = [_labelled(colorize(last_obs_dbz), "observed", scale)]
    pics += [_labelled(colorize(f), f"+{m} min", scale) for f, m in zip(fc_dbz, leads)]
    return pics


def png_strip(pics: list[Image.Image]) -> bytes:
    strip = Image.new("RGB", (sum(p.width + 2 for p in pics), pics[0].height), "white")
    x = 0
    for p in pics:
        strip.paste(p, (x, 0))
        x += p.width + 2
    buf = io.BytesIO()
    strip.save(buf, format="PNG")
    return buf.getvalue()


def gif_bytes(pics: list[Image.Image]) -> bytes:
    buf = io.BytesIO()
    pics[0].save(buf, format="GIF", save_all=True, append_images=pics[1:], duration=600, loop=0)
    return buf.getvalue()
