"""(Geo)TIFF radar frames, as many national services and GIS tools export composites.

Each page is one frame. Floating-point values are taken as they are, in the request's ``input_unit``;
integer gray levels are scaled like PNG frames (dBZ = gain x v + offset, ``png_nodata`` = no data). No data
also where the file's GDAL_NODATA tag says; the TIFF DateTime tag orders the files; the GeoTIFF pixel scale,
tie point and EPSG code become the pysteps-style georeferencing that goes out unchanged.
"""

from __future__ import annotations

import io
from datetime import datetime

import numpy as np

from modelrepo.radar_io.frames import RadarFrames, RadarInputError, check_array, check_decoded_size

NODATA_TAG, DATETIME_TAG = 42113, 306


def read_geotiff(data: bytes, name: str, unit: str, png: tuple[float, float, float], out: RadarFrames) -> None:
    import tifffile

    gain, offset, png_nodata = png
    with tifffile.TiffFile(io.BytesIO(data)) as tf:
        first = tf.pages[0]
        check_decoded_size((len(tf.pages), first.imagelength, first.imagewidth), 4, name)
        if first.samplesperpixel > 1:
            raise RadarInputError(
                "unsupported_tiff", f"{name}: a colour TIFF; radar frames must be one value per pixel, not a picture"
            )
        a = check_array(np.stack([p.asarray() for p in tf.pages]), name)
        integer = first.dtype is not None and np.dtype(first.dtype).kind in "iu"
        nodata = _tag(first, NODATA_TAG)
        stamp = _time(_tag(first, DATETIME_TAG), name)
        if first.is_geotiff:
            out.georef.update(georef(first.geotiff_tags, first.imagelength, first.imagewidth))
    mask = np.zeros(a.shape, bool)
    if nodata is not None:
        try:
            mask |= a == np.float32(float(str(nodata).strip()))
        except ValueError:
            raise RadarInputError("invalid_tiff", f"{name}: GDAL_NODATA {nodata!r} is not a number") from None
    if integer:
        mask |= a == png_nodata
        a, unit = gain * a + offset, "dBZ"
    a[mask] = np.nan
    out.add(list(a.astype(np.float32)), unit, "geotiff", [stamp] if len(a) == 1 else None)


def _tag(page, code: int):
    tag = page.tags.get(code)
    return None if tag is None else tag.value


def _time(value, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(str(value).strip(), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        raise RadarInputError("invalid_tiff", f"{name}: DateTime {value!r} is not 'YYYY:MM:DD HH:MM:SS'") from None


def georef(tags: dict, h: int, w: int) -> dict:
    """pysteps-style georeferencing from a north-up GeoTIFF's pixel scale and tie point (and EPSG code)."""
    scale, tie = tags.get("ModelPixelScale"), tags.get("ModelTiepoint")
    if not scale or not tie or len(tie) < 6:
        return {}
    sx, sy = float(scale[0]), float(scale[1])
    x1, y2 = float(tie[3]) - float(tie[0]) * sx, float(tie[4]) + float(tie[1]) * sy
    geo = {"x1": x1, "x2": x1 + w * sx, "y1": y2 - h * sy, "y2": y2, "xpixelsize": sx, "ypixelsize": sy}
    geo["yorigin"] = "upper"
    code = tags.get("ProjectedCSTypeGeoKey") or tags.get("GeographicTypeGeoKey")
    if code is not None and int(code) not in (0, 32767):  # 32767: user-defined, no code to give
        geo["projection"] = f"EPSG:{int(code)}"
    return geo
