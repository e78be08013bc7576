"""Reading radar frames from the files forecasters send, and writing forecasts as CF NetCDF.

Formats, told apart by their first bytes (not by name):

* ``.npy`` / ``.npz`` - an array (T, H, W) or (H, W); loaded with ``allow_pickle=False`` (pickles
  are refused). An ``.npz`` holds ``frames`` (or one array), optionally ``timestep_minutes``,
  ``timestamps`` (ISO strings) and ``metadata`` (a JSON string, echoed back).
* PNG - one frame per file, 8-bit or 16-bit gray: dBZ = ``png_gain`` * v + ``png_offset``
  (defaults 0.5 and -32: the OPERA/ODIM 8-bit DBZH scaling, 0..255 -> -32..95.5 dBZ), with
  v = ``png_nodata`` (255) meaning no data.
* ODIM HDF5 (the OPERA standard, as pysteps' ``import_odim_hdf5`` reads it) - quantity DBZH/TH
  (dBZ) or RATE (mm/h) from ``datasetN/dataN``, decoded with gain/offset; ``nodata`` -> NaN,
  ``undetect`` -> no rain. Time from ``/what`` date+time; the file's Z-R from ``/how`` zr_a/zr_b;
  ``/where`` (projdef, corners, pixel sizes) is kept as the georeferencing.
* NetCDF (classic or NetCDF-4) - the data variable by standard_name or common name, dims (.., y, x),
  units dBZ or mm/h (kg m-2 s-1 accepted); time from a CF time coordinate; x/y coordinates and the
  grid-mapping attributes kept as georeferencing (pysteps' metadata keys x1, y1, x2, y2,
  xpixelsize, ypixelsize, projection).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from modelrepo.errors import InputError

NPY_MAGIC, ZIP_MAGIC, PNG_MAGIC, HDF5_MAGIC = b"\x93NUMPY", b"PK\x03\x04", b"\x89PNG", b"\x89HDF\r\n\x1a\n"
NETCDF3_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")

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


def _unit_of(text: str | None, default: str | None = None) -> str:
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


def check_array(a: np.ndarray, what: str) -> np.ndarray:
    """float32 frames from a numeric array of 2 or 3 dims; refuses other dtypes."""
    if a.dtype.kind not in "fiu":
        raise RadarInputError("wrong_dtype", f"{what} has dtype {a.dtype}; frames must be numbers (float or integer)")
    if a.ndim not in (2, 3) or min(a.shape[-2:]) < 1:
        raise RadarInputError("wrong_shape", f"{what} has shape {a.shape}; expected (T, H, W) or (H, W)")
    a = a.astype(np.float32)
    if np.isinf(a).any():
        raise RadarInputError("invalid_values", f"{what} contains infinite values (use NaN for no data)")
    return a


def _frames_of(a: np.ndarray) -> list[np.ndarray]:
    return [f for f in a] if a.ndim == 3 else [a]


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
    raise RadarInputError(
        "unsupported_format", "not a .npy, .npz, PNG, ODIM HDF5 or NetCDF file (judged by its first bytes)"
    )


def _load_npy(data: bytes, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise RadarInputError("pickle_refused", f"{name}: pickled (object) arrays are refused") from None
        raise RadarInputError("invalid_npy", f"{name}: not a readable .npy array: {exc}") from None
    except (OSError, EOFError) as exc:
        raise RadarInputError("invalid_npy", f"{name}: not a readable .npy array: {exc}") from None


def read_npy(data: bytes, name: str, unit: str, out: RadarFrames) -> None:
    a = check_array(_load_npy(data, name), name)
    out.add(_frames_of(a), unit, "npy")


def read_npz(data: bytes, name: str, unit: str, out: RadarFrames) -> None:
    try:
        z = np.load(io.BytesIO(data), allow_pickle=False)
        keys = list(z.keys())
        arrays = {k: z[k] for k in keys}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise RadarInputError("pickle_refused", f"{name}: pickled (object) arrays are refused") from None
        raise RadarInputError("invalid_npz", f"{name}: not a readable .npz archive: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise RadarInputError("invalid_npz", f"{name}: not a readable .npz archive: {exc}") from None
    known = {"frames", "timestep_minutes", "timestamps", "metadata", "unit"}
    data_keys = ["frames"] if "frames" in arrays else [k for k in keys if k not in known]
    if len(data_keys) != 1:
        raise RadarInputError("invalid_npz", f"{name}: put the frames under 'frames' (found {keys})")
    a = check_array(arrays[data_keys[0]], f"{name}[{data_keys[0]}]")
    if "unit" in arrays:
        unit = _unit_of(str(arrays["unit"]))
    if "timestep_minutes" in arrays:
        out.timestep_minutes = float(arrays["timestep_minutes"])
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


def parse_time(s: str) -> datetime:
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise RadarInputError("invalid_timestamps", f"timestamp {s!r} is not ISO 8601") from None


def read_png(data: bytes, name: str, gain: float, offset: float, nodata: float, out: RadarFrames) -> None:
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the client's file
        raise RadarInputError("invalid_png", f"{name}: PNG cannot be decoded: {exc}") from None
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


def _open_h5(data: bytes):
    import h5py

    return h5py.File(io.BytesIO(data), "r")


def is_odim(data: bytes) -> bool:
    with _open_h5(data) as f:
        conv = _scalar(f.attrs.get("Conventions", ""))
        return str(conv).upper().startswith("ODIM") or ("what" in f and "where" in f and "dataset1" in f)


def read_odim(data: bytes, name: str, out: RadarFrames) -> None:
    """ODIM HDF5: the first dataN with quantity DBZH, TH or RATE."""
    with _open_h5(data) as f:
        found = None
        for dsname in sorted(k for k in f if k.startswith("dataset")):
            ds = f[dsname]
            ds_what = dict(ds["what"].attrs) if "what" in ds else {}
            for dname in sorted(k for k in ds if k.startswith("data")):
                what = ds_what | (dict(ds[dname]["what"].attrs) if "what" in ds[dname] else {})
                qty = str(_scalar(what.get("quantity", ""))).upper()
                if qty in ("DBZH", "TH", "RATE") and "data" in ds[dname]:
                    found = (ds[dname]["data"][...], qty, what)
                    break
            if found:
                break
        if found is None:
            raise RadarInputError("invalid_odim", f"{name}: no dataset with quantity DBZH, TH or RATE")
        raw, qty, what = found
        if raw.ndim != 2:
            raise RadarInputError("invalid_odim", f"{name}: data has shape {raw.shape}, expected 2-D")
        gain, offset = float(what.get("gain", 1.0)), float(what.get("offset", 0.0))
        nodata, undetect = what.get("nodata", np.nan), what.get("undetect", np.nan)
        values = raw.astype(np.float64) * gain + offset
        unit = "mm/h" if qty == "RATE" else "dBZ"
        values[raw == undetect] = 0.0 if unit == "mm/h" else -32.0  # no echo: no rain
        values[raw == nodata] = np.nan
        date, time = _scalar(f["what"].attrs.get("date", "")), _scalar(f["what"].attrs.get("time", ""))
        try:
            stamp = datetime.strptime(f"{date}{time}", "%Y%m%d%H%M%S")
        except ValueError:
            raise RadarInputError("invalid_odim", f"{name}: /what date/time {date!r} {time!r} unreadable") from None
        zr = None
        for how in (f.get("how"), f[dsname].get("how") if dsname in f else None):
            if how is not None and "zr_a" in how.attrs and "zr_b" in how.attrs:
                zr = (float(how.attrs["zr_a"]), float(how.attrs["zr_b"]))
        if zr is not None:
            out.zr = zr
        if "where" in f:
            out.georef.update({k: _scalar(v) for k, v in f["where"].attrs.items()})
    out.add([values.astype(np.float32)], unit, "odim", [stamp])


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
        raise RadarInputError("invalid_netcdf", f"{name}: NetCDF cannot be read: {exc}") from None
    with ds:
        v = _nc_variable(ds)
        unit = _unit_of(getattr(v, "units", None), default="dBZ" if v.name.lower() in DBZ_NAMES else None)
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


def read_file(data: bytes, name: str, out: RadarFrames, unit: str, png: tuple[float, float, float]) -> None:
    """Append the frames of one uploaded file to ``out``."""
    kind = sniff(data)
    if kind == "npy":
        read_npy(data, name, unit, out)
    elif kind == "npz":
        read_npz(data, name, unit, out)
    elif kind == "png":
        read_png(data, name, *png, out)
    elif kind == "netcdf":
        read_netcdf(data, name, out)
    else:  # HDF5: ODIM or NetCDF-4
        try:
            odim = is_odim(data)
        except OSError as exc:
            raise RadarInputError("invalid_hdf5", f"{name}: HDF5 cannot be read: {exc}") from None
        if odim:
            read_odim(data, name, out)
        else:
            read_netcdf(data, name, out)


def read_frames(
    files: list[tuple[str, bytes]],
    input_unit: str = "dBZ",
    png_gain: float = 0.5,
    png_offset: float = -32.0,
    png_nodata: float = 255,
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
    except (ValueError, TypeError):
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
    meta = payload.get("metadata")
    if meta is not None:
        if not isinstance(meta, dict):
            raise RadarInputError("invalid_metadata", '"metadata" must be an object (pysteps metadata keys)')
        out.georef.update(meta)
    return out


EXAMPLE_PROJDEF = "+proj=stere +lat_0=90 +lon_0=10 +lat_ts=60 +a=6378137 +b=6356752 +units=m"
EXAMPLE_CORNERS = {
    "LL_lon": 3.5,
    "LL_lat": 46.9,
    "UL_lon": 2.1,
    "UL_lat": 54.7,
    "UR_lon": 16.6,
    "UR_lat": 54.6,
    "LR_lon": 15.1,
    "LR_lat": 46.8,
}


def write_odim(
    path,
    values: np.ndarray,
    when: datetime,
    quantity: str = "DBZH",
    gain: float = 0.5,
    offset: float = -32.0,
    zr: tuple[float, float] | None = None,
    projdef: str = EXAMPLE_PROJDEF,
    corners: dict[str, float] | None = None,
    pixel_m: float = 1000.0,
):
    """One ODIM HDF5 composite (8-bit, the layout pysteps' ``import_odim_hdf5`` reads); NaN -> nodata (255),
    values at or below ``offset`` -> undetect (0). ``corners``: LL/UL/UR/LR lon/lat (example values if absent)."""
    import h5py

    raw = np.clip(np.round((np.nan_to_num(values, nan=offset) - offset) / gain), 1, 254).astype(np.uint8)
    raw[values <= offset] = 0
    raw[np.isnan(values)] = 255
    h, w = values.shape
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = np.bytes_("ODIM_H5/V2_3")
        what = f.create_group("what")
        what.attrs.update(
            {
                "object": np.bytes_("COMP"),
                "version": np.bytes_("H5rad 2.3"),
                "date": np.bytes_(when.strftime("%Y%m%d")),
                "time": np.bytes_(when.strftime("%H%M%S")),
                "source": np.bytes_("CMT:ConvServe"),
            }
        )
        where = f.create_group("where")
        where.attrs["projdef"] = np.bytes_(projdef)
        where.attrs.update(
            {"xsize": w, "ysize": h, "xscale": pixel_m, "yscale": pixel_m} | (corners or EXAMPLE_CORNERS)
        )
        if zr is not None:
            f.create_group("how").attrs.update({"zr_a": zr[0], "zr_b": zr[1]})
        ds = f.create_group("dataset1")
        ds.create_group("what").attrs.update({"product": np.bytes_("COMP")})
        d = ds.create_group("data1")
        d.create_dataset("data", data=raw, compression="gzip")
        d.create_group("what").attrs.update(
            {"quantity": np.bytes_(quantity), "gain": gain, "offset": offset, "nodata": 255.0, "undetect": 0.0}
        )
    return path


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
            xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
            cart = "1"
            if all(isinstance(georef.get(k), int | float) for k in ("x1", "x2", "y1", "y2")):
                dx, dy = (georef["x2"] - georef["x1"]) / w, (georef["y2"] - georef["y1"]) / h
                xs = georef["x1"] + dx * (xs + 0.5)
                ys = georef["y1"] + dy * (ys + 0.5)
                if georef.get("yorigin", "upper") == "upper":
                    ys = ys[::-1]
                cart = str(georef.get("cartesian_unit") or "m")
            xv = ds.createVariable("x", "f8", ("x",))
            xv.standard_name, xv.units, xv[:] = "projection_x_coordinate", cart, xs
            yv = ds.createVariable("y", "f8", ("y",))
            yv.standard_name, yv.units, yv[:] = "projection_y_coordinate", cart, ys
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
