"""Reading radar frames from the files forecasters send, and writing forecasts as CF NetCDF.

Formats, told apart by their first bytes (not by name):

* ``.npy`` / ``.npz`` - an array (T, H, W) or (H, W); loaded with ``allow_pickle=False`` (pickles
  are refused). An ``.npz`` holds ``frames`` (or one array), optionally ``timestep_minutes``,
  ``timestamps`` (ISO strings) and ``metadata`` (a JSON string, echoed back).
* PNG - one frame per file, 8-bit or 16-bit gray: dBZ = ``png_gain`` * v + ``png_offset``
  (defaults ``OPERA_GAIN`` 0.5 and ``OPERA_OFFSET`` -32: the OPERA/ODIM 8-bit DBZH scaling), with
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

from modelrepo.radar_io.arrays import read_npy, read_npz, read_png
from modelrepo.radar_io.frames import (
    DBZ_NAMES,
    DBZ_UNITS,
    OPERA_GAIN,
    OPERA_NODATA,
    OPERA_OFFSET,
    OPERA_UNDETECT,
    RATE_NAMES,
    RATE_UNITS,
    RadarFrames,
    RadarInputError,
    check_array,
    parse_time,
)
from modelrepo.radar_io.netcdf import read_netcdf, write_netcdf
from modelrepo.radar_io.odim import EXAMPLE_CORNERS, EXAMPLE_PROJDEF, is_odim, read_odim, write_odim
from modelrepo.radar_io.read import frames_from_json, read_file, read_frames, sniff

__all__ = [
    "DBZ_NAMES", "DBZ_UNITS", "EXAMPLE_CORNERS", "EXAMPLE_PROJDEF", "OPERA_GAIN", "OPERA_NODATA", "OPERA_OFFSET",
    "OPERA_UNDETECT", "RATE_NAMES", "RATE_UNITS", "RadarFrames", "RadarInputError", "check_array",
    "frames_from_json", "is_odim", "parse_time", "read_file", "read_frames", "read_netcdf", "read_npy", "read_npz",
    "read_odim", "read_png", "sniff", "write_netcdf", "write_odim",
]  # fmt: skip
