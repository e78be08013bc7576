"""Small radar files the tests write themselves: ODIM HDF5 (in the layout pysteps' importer reads),
CF NetCDF, gray PNG and .npy/.npz."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import h5py
import netCDF4
import numpy as np
from PIL import Image

PROJDEF = "+proj=stere +lat_0=90 +lon_0=10 +lat_ts=60 +a=6378137 +b=6356752 +units=m"
CORNERS = {
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
    path: Path,
    values: np.ndarray,
    when: datetime,
    quantity: str = "DBZH",
    gain: float = 0.5,
    offset: float = -32.0,
    zr: tuple[float, float] | None = None,
) -> Path:
    """One ODIM HDF5 composite; NaN -> nodata (255), values at or below offset -> undetect (0)."""
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
                "source": np.bytes_("ORG:247,CMT:test"),
            }
        )
        where = f.create_group("where")
        where.attrs["projdef"] = np.bytes_(PROJDEF)
        where.attrs.update({"xsize": w, "ysize": h, "xscale": 1000.0, "yscale": 1000.0} | CORNERS)
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


def write_netcdf_frame(
    path: Path, values: np.ndarray, when: datetime, unit: str = "dBZ", x0: float = -128000.0, y0: float = 0.0
) -> Path:
    """One CF NetCDF frame (time=1, y, x) with projected coordinates (1 km) and a grid mapping."""
    h, w = values.shape
    with netCDF4.Dataset(path, "w") as ds:
        ds.Conventions = "CF-1.8"
        ds.createDimension("time", 1)
        ds.createDimension("y", h)
        ds.createDimension("x", w)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "minutes since 2026-01-01 00:00:00"
        t[:] = [netCDF4.date2num(when, t.units)]
        x = ds.createVariable("x", "f8", ("x",))
        x.units = "m"
        x[:] = x0 + 500.0 + 1000.0 * np.arange(w)
        y = ds.createVariable("y", "f8", ("y",))
        y.units = "m"
        y[:] = y0 - 500.0 - 1000.0 * np.arange(h)  # north up: y falls down the rows
        crs = ds.createVariable("crs", "i4", ())
        crs.proj4_params = PROJDEF
        name = "reflectivity" if unit == "dBZ" else "precip_intensity"
        v = ds.createVariable(name, "f4", ("time", "y", "x"), fill_value=np.float32(-9999.0))
        v.units = unit
        v.grid_mapping = "crs"
        v[0] = np.where(np.isnan(values), -9999.0, values)
    return path


def png_frame(dbz: np.ndarray, gain: float = 0.5, offset: float = -32.0) -> bytes:
    """8-bit gray PNG: v = (dBZ - offset) / gain, 255 = no data."""
    v = np.clip(np.round((np.nan_to_num(dbz, nan=0.0) - offset) / gain), 0, 254).astype(np.uint8)
    v[np.isnan(dbz)] = 255
    buf = io.BytesIO()
    Image.fromarray(v).save(buf, format="PNG")
    return buf.getvalue()


def npy_bytes(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()
