"""NetCDF (classic or NetCDF-4) frames in; forecasts out as CF-1.8 NetCDF."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime

import numpy as np

from modelrepo.errors import plain
from modelrepo.radar_io.frames import (
    DBZ_NAMES,
    RATE_NAMES,
    RadarFrames,
    RadarInputError,
    _frames_of,
    _scalar,
    _unit_of,
    check_array,
    check_decoded_size,
)
from modelrepo.radar_io.odim import _open_h5  # noqa: F401


def _nc_variable(ds):
    coords = set(ds.dimensions)
    candidates = [v for n, v in ds.variables.items() if n not in coords and v.ndim >= 2]
    for names in (DBZ_NAMES, RATE_NAMES):
        for v in candidates:
            if str(getattr(v, "standard_name", "")).lower() in names or v.name.lower() in names:
                return v
    if len(candidates) == 1:
        return candidates[0]
    raise RadarInputError(
        "invalid_netcdf", f"cannot tell the data variable among {[v.name for v in candidates]}; name it dBZ/rain rate"
    )


def read_netcdf(data: bytes, name: str, out: RadarFrames) -> None:
    import netCDF4

    try:
        ds = netCDF4.Dataset("upload.nc", mode="r", memory=data)
    except OSError as exc:
        raise RadarInputError("invalid_netcdf", f"{name}: NetCDF cannot be read: {plain(exc)}") from None
    with ds:
        v = _nc_variable(ds)
        unit = _unit_of(getattr(v, "units", None), default="dBZ" if v.name.lower() in DBZ_NAMES else None)
        check_decoded_size(v.shape, v.dtype.itemsize, f"{name}:{v.name}")
        a = np.ma.filled(np.ma.asarray(v[...], dtype=np.float64), np.nan)
        if unit == "kg m-2 s-1":
            a, unit = a * 3600.0, "mm/h"
        a = a.reshape((-1, *a.shape[-2:])) if a.ndim > 2 else a
        a = check_array(a, f"{name}:{v.name}")
        frames = _frames_of(a)
        times: list[datetime | None] = [None] * len(frames)
        tdim = v.dimensions[0] if v.ndim == 3 else None
        tvar = next((ds.variables[n] for n in (tdim, "time", "t") if n and n in ds.variables), None)
        if tvar is not None and "since" in str(getattr(tvar, "units", "")):
            stamps = netCDF4.num2date(
                np.atleast_1d(tvar[...]),
                tvar.units,
                getattr(tvar, "calendar", "standard"),
                only_use_cftime_datetimes=False,
            )
            if len(stamps) == len(frames):
                times = [datetime(*s.timetuple()[:6]) for s in stamps]
        ydim, xdim = v.dimensions[-2:]
        geo: dict = {}
        if xdim in ds.variables and ydim in ds.variables:
            xs, ys = np.asarray(ds.variables[xdim][:], float), np.asarray(ds.variables[ydim][:], float)
            if len(xs) > 1 and len(ys) > 1:
                dx, dy = abs(xs[1] - xs[0]), abs(ys[1] - ys[0])
                geo |= {
                    "x1": float(xs.min() - dx / 2),
                    "x2": float(xs.max() + dx / 2),
                    "y1": float(ys.min() - dy / 2),
                    "y2": float(ys.max() + dy / 2),
                    "xpixelsize": float(dx),
                    "ypixelsize": float(dy),
                    "yorigin": "upper" if ys[0] > ys[-1] else "lower",
                    "cartesian_unit": str(getattr(ds.variables[xdim], "units", "")),
                }
        gm = getattr(v, "grid_mapping", None)
        if gm and gm in ds.variables:
            attrs = {k: _scalar(ds.variables[gm].getncattr(k)) for k in ds.variables[gm].ncattrs()}
            proj = attrs.get("proj4_params") or attrs.get("proj4") or attrs.get("crs_wkt") or attrs.get("spatial_ref")
            if proj:
                geo["projection"] = proj
        for k in ds.ncattrs():
            if k in ("projection", "institution"):
                geo[k] = _scalar(ds.getncattr(k))
        if "convserve_georef" in ds.ncattrs():  # our own output, read back: the original block
            geo = json.loads(ds.getncattr("convserve_georef"))
        out.georef.update(geo)
    out.add(frames, unit, "netcdf", times)


def _xy(georef: dict, h: int, w: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Pixel-centre coordinates from pysteps' x1/x2/y1/y2 keys (y from the top when yorigin is upper),
    else pixel indices; and their unit."""
    xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
    if not all(isinstance(georef.get(k), int | float) for k in ("x1", "x2", "y1", "y2")):
        return xs, ys, "1"
    dx, dy = (georef["x2"] - georef["x1"]) / w, (georef["y2"] - georef["y1"]) / h
    xs, ys = georef["x1"] + dx * (xs + 0.5), georef["y1"] + dy * (ys + 0.5)
    if georef.get("yorigin", "upper") == "upper":
        ys = ys[::-1]
    return xs, ys, str(georef.get("cartesian_unit") or "m")


def _write_xy(ds, georef: dict, h: int, w: int) -> None:
    xs, ys, unit = _xy(georef, h, w)
    xv = ds.createVariable("x", "f8", ("x",))
    xv.standard_name, xv.units, xv[:] = "projection_x_coordinate", unit, xs
    yv = ds.createVariable("y", "f8", ("y",))
    yv.standard_name, yv.units, yv[:] = "projection_y_coordinate", unit, ys


def write_netcdf(
    forecast: np.ndarray,
    lead_seconds: list[float],
    unit: str,
    georef: dict,
    reference_time: datetime | None,
    attrs: dict[str, str],
) -> bytes:
    """CF-1.8 NetCDF-4: ``forecast`` (time, y, x), time = seconds since the last observation.

    x/y are pixel centres from the georeferencing when it has x1/x2/y1/y2 (pysteps' keys), else
    pixel indices; the georeferencing that came in is also stored whole in ``convserve_georef``."""
    import netCDF4

    s, h, w = forecast.shape
    fd, path = tempfile.mkstemp(suffix=".nc")
    os.close(fd)
    try:
        with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
            ds.Conventions = "CF-1.8"
            ds.title = "ConvServe radar nowcast"
            for k, v in attrs.items():
                ds.setncattr(k, v)
            ds.convserve_georef = json.dumps(georef)
            ds.createDimension("time", s)
            ds.createDimension("y", h)
            ds.createDimension("x", w)
            t = ds.createVariable("time", "f8", ("time",))
            t.standard_name = "forecast_period"
            t.long_name = "time since the last observation"
            t.units = "s"
            t[:] = np.asarray(lead_seconds, np.float64)
            if reference_time is not None:
                ref = ds.createVariable("forecast_reference_time", "f8", ())
                ref.standard_name = "forecast_reference_time"
                ref.units = f"seconds since {reference_time:%Y-%m-%d %H:%M:%S}"
                ref.assignValue(0.0)
            _write_xy(ds, georef, h, w)
            proj = georef.get("projection") or georef.get("projdef")
            name = "reflectivity" if unit == "dBZ" else "precip_intensity"
            v = ds.createVariable(name, "f4", ("time", "y", "x"), zlib=True, fill_value=np.float32(np.nan))
            v.units = "dBZ" if unit == "dBZ" else "mm h-1"
            if unit == "dBZ":
                v.standard_name = "equivalent_reflectivity_factor"
            v.long_name = "nowcast " + ("radar reflectivity" if unit == "dBZ" else "rain rate")
            if proj:
                crs = ds.createVariable("crs", "i4", ())
                crs.proj4_params = str(proj)
                v.grid_mapping = "crs"
            v[:] = forecast.astype(np.float32)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)
