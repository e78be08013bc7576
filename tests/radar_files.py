"""Small radar files the tests write themselves: ODIM HDF5 (in the layout pysteps' importer reads),
CF NetCDF, GeoTIFF, gray PNG and .npy/.npz."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import netCDF4
import numpy as np
from PIL import Image

from modelrepo.radar_io import EXAMPLE_PROJDEF as PROJDEF
from modelrepo.radar_io import write_odim  # noqa: F401 - the tests' ODIM files come from the shared writer


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


def geotiff_frame(values: np.ndarray, when: datetime | None = None, epsg: int = 3035, nodata: float = -9999.0) -> bytes:
    """A float32 GeoTIFF frame as GDAL writes one: 1 km pixels, top-left corner at (4,000 km, 3,000 km), an EPSG
    code, GDAL_NODATA and the TIFF DateTime."""
    import tifffile

    keys = (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, epsg)
    tags = [
        (33550, 12, 3, (1000.0, 1000.0, 0.0)),
        (33922, 12, 6, (0.0, 0.0, 0.0, 4_000_000.0, 3_000_000.0, 0.0)),
        (34735, 3, len(keys), keys),
        (42113, 2, 0, f"{nodata:g}"),
    ]
    if when is not None:
        tags.append((306, 2, 0, when.strftime("%Y:%m:%d %H:%M:%S")))
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.where(np.isnan(values), nodata, values).astype(np.float32), extratags=tags)
    return buf.getvalue()
