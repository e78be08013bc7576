"""ODIM HDF5 (the OPERA standard, as pysteps reads it): reading frames and writing example files."""

from __future__ import annotations

import io
from datetime import datetime

import numpy as np

from modelrepo.radar_io.frames import (
    OPERA_GAIN,
    OPERA_NODATA,
    OPERA_OFFSET,
    OPERA_UNDETECT,
    RadarFrames,
    RadarInputError,
    _scalar,
    check_decoded_size,
)


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
                    d = ds[dname]["data"]
                    check_decoded_size(d.shape, d.dtype.itemsize, f"{name}:{dsname}/{dname}")
                    found = (d[...], qty, what)
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
        values[raw == undetect] = 0.0 if unit == "mm/h" else offset  # no echo: no rain (the lowest dBZ code)
        if unit == "dBZ" and (raw == undetect).any():  # the file's own "no echo", where it uses it
            out.no_rain = offset
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
    gain: float = OPERA_GAIN,
    offset: float = OPERA_OFFSET,
    zr: tuple[float, float] | None = None,
    projdef: str = EXAMPLE_PROJDEF,
    corners: dict[str, float] | None = None,
    pixel_m: float = 1000.0,
):
    """One ODIM HDF5 composite (8-bit, the layout pysteps' ``import_odim_hdf5`` reads); NaN -> nodata (255),
    values at or below ``offset`` -> undetect (0). ``corners``: LL/UL/UR/LR lon/lat (example values if absent)."""
    import h5py

    raw = np.clip(np.round((np.nan_to_num(values, nan=offset) - offset) / gain), 1, 254).astype(np.uint8)
    raw[values <= offset] = OPERA_UNDETECT
    raw[np.isnan(values)] = OPERA_NODATA
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
            {
                "quantity": np.bytes_(quantity),
                "gain": gain,
                "offset": offset,
                "nodata": float(OPERA_NODATA),
                "undetect": float(OPERA_UNDETECT),
            }
        )
    return path
