"""Radar units, the nowcaster's scaling, and the radar file readers (checked against pysteps' importer)."""

from __future__ import annotations

import io
import json
from datetime import datetime

import numpy as np
import pytest

from modelrepo.card import RadarSpec
from modelrepo.radar import colorize, dbz_to_rate, from_network, rate_to_dbz, rollout_numpy, to_network
from modelrepo.radar_io import RadarInputError, frames_from_json, read_frames, write_netcdf
from tests.radar_files import PROJDEF, npy_bytes, png_frame, write_netcdf_frame, write_odim

SPEC = RadarSpec()
T0 = datetime(2026, 7, 1, 12, 0)


def test_marshall_palmer_values() -> None:
    # Z = 200 R^1.6: 1 mm/h is 23.01 dBZ, 10 mm/h 39.01 dBZ
    np.testing.assert_allclose(rate_to_dbz(np.array([1.0, 10.0]), 200, 1.6, 5, 10), [23.0103, 39.0103], atol=1e-3)
    np.testing.assert_allclose(dbz_to_rate(np.array([23.0103, 39.0103]), 200, 1.6, 10), [1.0, 10.0], rtol=1e-4)


def test_zr_round_trip_keeps_rain_no_rain_and_no_data() -> None:
    dbz = np.array([5.0, 9.9, 10.0, 27.5, 55.0, np.nan])
    for a, b in ((200, 1.6), (300, 1.4)):
        rate = dbz_to_rate(dbz, a, b, threshold=10)
        assert rate[0] == 0 and rate[1] == 0 and np.isnan(rate[-1])  # below the threshold: no rain
        back = rate_to_dbz(rate, a, b, zerovalue=5, threshold=10)
        np.testing.assert_allclose(back[2:5], dbz[2:5], atol=1e-3)
        assert back[0] == back[1] == 5 and np.isnan(back[-1])


def test_network_scale_round_trip() -> None:
    dbz = np.array([[np.nan, 0.0, 9.0, 10.0], [20.0, 35.5, 55.0, 80.0]], np.float32)
    x = to_network(dbz, SPEC)
    assert x[0, 0] == 0 and x[0, 1] == 0 and x[0, 2] == 0  # no data and no rain both 0 inside the network
    np.testing.assert_allclose(x[1, :3], (np.array([20.0, 35.5, 55.0]) - SPEC.zerovalue) / SPEC.scale_dbz)
    back = from_network(x, SPEC)
    np.testing.assert_allclose(back[1, :3], [20.0, 35.5, 55.0], atol=1e-5)
    assert back[1, 3] == SPEC.max_dbz and back[0, 1] == SPEC.zerovalue


def test_rain_decision_value_serves_a_forecast_just_below_the_threshold_as_rain_at_the_threshold() -> None:
    """A network hedging at a rain edge lands just below 10 dBZ; with the card's decision value 8.5 dBZ such a
    value is served as rain at the threshold (the data never holds 5-10 dBZ), lower ones stay no rain."""
    dbz = np.array([[8.0, 8.5, 9.9, 10.0, 30.0, np.nan]], np.float32)
    y = SPEC.net_value(dbz)
    plain = from_network(y, SPEC)  # no decision value: the threshold itself
    np.testing.assert_allclose(plain[0, :5], [5.0, 5.0, 5.0, 10.0, 30.0], atol=1e-4)
    calibrated = from_network(y, SPEC.model_copy(update={"rain_decision_dbz": 8.5}))
    np.testing.assert_allclose(calibrated[0, :5], [5.0, 10.0, 10.0, 10.0, 30.0], atol=1e-4)
    assert np.isnan(plain[0, 5]) and np.isnan(calibrated[0, 5])  # no data stays no data
    assert SPEC.decision_dbz == SPEC.rain_threshold
    for bad in (SPEC.zerovalue, SPEC.rain_threshold + 0.5):
        with pytest.raises(ValueError, match="rain_decision_dbz"):
            RadarSpec(**(SPEC.model_dump() | {"rain_decision_dbz": bad}))


def test_colorize_marks_no_data_gray_and_rain_in_colour() -> None:
    rgb = colorize(np.array([[np.nan, 5.0, 45.0]]))
    assert rgb.shape == (1, 3, 3)
    assert tuple(rgb[0, 0]) == (150, 150, 150) and tuple(rgb[0, 1]) == (255, 255, 255)
    assert len(set(rgb[0, 2])) > 1  # a colour, not gray


def test_rollout_numpy_feeds_predictions_back() -> None:
    calls = []

    def run(x: np.ndarray) -> np.ndarray:  # "next two frames": last frame + 1, + 2
        calls.append(x[0, :, 0, 0].tolist())
        return np.concatenate([x[:, -1:] + 1, x[:, -1:] + 2], axis=1)

    x = np.arange(3, dtype=np.float32).reshape(1, 3, 1, 1)
    out = rollout_numpy(run, x, 5)
    assert out[0, :, 0, 0].tolist() == [3, 4, 5, 6, 7]
    assert calls == [[0, 1, 2], [2, 3, 4], [4, 5, 6]]  # the newest 3 frames each time


# ---- readers ----------------------------------------------------------------------------------


def field(seed: int = 0, shape=(20, 24)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.round(rng.uniform(5, 55, shape) * 2) / 2  # representable in 0.5 dBZ steps
    a[:3, :4] = np.nan  # outside coverage
    return a.astype(np.float32)


def test_odim_file_reads_like_pysteps(tmp_path) -> None:
    from pysteps.io.importers import import_odim_hdf5

    dbz = field()
    path = write_odim(tmp_path / "a.h5", dbz, T0, zr=(250.0, 1.5))
    theirs, _, meta = import_odim_hdf5(str(path), qty="DBZH")
    radar = read_frames([("a.h5", path.read_bytes())])
    ours = radar.frames[0]
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours[~np.isnan(ours)], theirs[~np.isnan(theirs)], atol=1e-6)
    np.testing.assert_allclose(ours[~np.isnan(ours)], dbz[~np.isnan(dbz)], atol=1e-6)
    assert radar.units == ["dBZ"] and radar.times == [T0] and radar.zr == (250.0, 1.5)
    assert radar.georef["projdef"] == meta["projection"] == PROJDEF
    assert radar.georef["LL_lon"] == meta["ll_lon"] and radar.georef["xscale"] == meta["xpixelsize"]


def test_odim_rain_rate_file(tmp_path) -> None:
    from pysteps.io.importers import import_odim_hdf5

    rate = np.full((8, 8), 2.5, np.float32)
    rate[0, 0] = np.nan
    path = write_odim(tmp_path / "r.h5", rate, T0, quantity="RATE", gain=0.01, offset=0.0)
    theirs, _, _ = import_odim_hdf5(str(path), qty="RATE")
    radar = read_frames([("r.h5", path.read_bytes())])
    assert radar.units == ["mm/h"]
    np.testing.assert_allclose(radar.frames[0][1:, 1:], 2.5, atol=1e-6)
    np.testing.assert_allclose(radar.frames[0], theirs, atol=1e-6, equal_nan=True)


def test_netcdf_frame_round_trip_with_georeferencing(tmp_path) -> None:
    dbz = field(1)
    path = write_netcdf_frame(tmp_path / "a.nc", dbz, T0)
    radar = read_frames([("a.nc", path.read_bytes())])
    np.testing.assert_allclose(radar.frames[0], dbz, equal_nan=True)
    assert radar.times == [T0] and radar.units == ["dBZ"]
    g = radar.georef
    assert (g["x1"], g["x2"], g["y1"], g["y2"]) == (-128000.0, -104000.0, -20000.0, 0.0)
    assert g["xpixelsize"] == g["ypixelsize"] == 1000.0 and g["yorigin"] == "upper"
    assert g["projection"] == PROJDEF


def test_written_netcdf_is_cf_and_reads_back(tmp_path) -> None:
    import netCDF4

    fc = np.stack([field(2), field(3)])
    georef = {"x1": 0.0, "x2": 24000.0, "y1": 0.0, "y2": 20000.0, "projection": PROJDEF, "yorigin": "upper"}
    data = write_netcdf(fc, [360.0, 720.0], "dBZ", georef, T0, {"source": "test"})
    with netCDF4.Dataset("x.nc", memory=data) as ds:
        v = ds["reflectivity"]
        assert v.dimensions == ("time", "y", "x") and v.units == "dBZ"
        assert ds["time"].units == "s" and ds["time"].standard_name == "forecast_period"
        assert list(ds["time"][:]) == [360.0, 720.0]
        assert ds["crs"].proj4_params == PROJDEF and v.grid_mapping == "crs"
        assert ds["x"][0] == 500.0 and ds["y"][0] == 19500.0  # pixel centres, north up
        np.testing.assert_allclose(np.ma.filled(v[:], np.nan), fc, equal_nan=True)
        assert json.loads(ds.convserve_georef) == georef
    again = read_frames([("f.nc", data)])
    assert len(again.frames) == 2 and again.georef == georef


def test_npz_with_times_and_metadata() -> None:
    frames = np.stack([field(i) for i in range(3)])
    buf = io.BytesIO()
    stamps = np.array(["2026-07-01T12:00:00", "2026-07-01T12:06:00", "2026-07-01T12:12:00"])
    np.savez(buf, frames=frames, timestamps=stamps, metadata=np.str_(json.dumps({"projection": "x"})))
    radar = read_frames([("a.npz", buf.getvalue())])
    assert len(radar.frames) == 3 and radar.times[1] == datetime(2026, 7, 1, 12, 6)
    assert radar.georef == {"projection": "x"}


def test_geotiff_values_no_data_time_and_georeferencing() -> None:
    import tifffile

    from tests.radar_files import geotiff_frame

    dbz = field(4)
    dbz[0, :3] = np.nan
    radar = read_frames([("a.tif", geotiff_frame(dbz, datetime(2026, 7, 1, 12, 6)))])
    np.testing.assert_allclose(radar.frames[0], dbz, equal_nan=True)  # floats as they are, GDAL_NODATA -> NaN
    assert radar.times == [datetime(2026, 7, 1, 12, 6)] and radar.formats == ["geotiff"]
    h, w = dbz.shape
    assert radar.georef == {
        "x1": 4_000_000.0, "x2": 4_000_000.0 + 1000.0 * w, "y1": 3_000_000.0 - 1000.0 * h, "y2": 3_000_000.0,
        "xpixelsize": 1000.0, "ypixelsize": 1000.0, "yorigin": "upper", "projection": "EPSG:3035",
    }  # fmt: skip
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.array([[0, 84, 255]], np.uint8))  # integer gray levels: scaled as PNG frames
    np.testing.assert_allclose(read_frames([("b.tif", buf.getvalue())]).frames[0], [[-32.0, 10.0, np.nan]])
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((4, 4, 3), np.uint8), photometric="rgb")
    with pytest.raises(RadarInputError) as e:
        read_frames([("c.tif", buf.getvalue())])
    assert e.value.code == "unsupported_tiff" and "colour" in e.value.message


def test_png_scaling_and_no_data() -> None:
    dbz = field(4)
    radar = read_frames([("a.png", png_frame(dbz))])
    np.testing.assert_allclose(radar.frames[0], dbz, equal_nan=True)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (npy_bytes(np.array([{"a": 1}], dtype=object), allow_pickle=True), "pickle_refused"),
        (npy_bytes(np.zeros((3, 4, 4), np.complex64)), "wrong_dtype"),
        (npy_bytes(np.array(["a", "b"])), "wrong_dtype"),
        (npy_bytes(np.zeros((2, 3, 4, 4))), "wrong_shape"),
        (b"GIF89a....", "unsupported_format"),
        (npy_bytes(np.zeros((3, 4, 4)))[:60], "invalid_npy"),
    ],
)
def test_bad_files_are_refused_with_a_reason(data: bytes, code: str) -> None:
    with pytest.raises(RadarInputError) as e:
        read_frames([("f", data)])
    assert e.value.code == code and e.value.message
    assert not hasattr(e.value, "status")  # modelrepo knows no HTTP: service/errors.py maps the code


def test_json_frames_null_is_no_data() -> None:
    radar = frames_from_json({"frames": [[[1, None], [2, 3]]] * 3, "timestep_minutes": 6}, "dBZ")
    assert len(radar.frames) == 3 and np.isnan(radar.frames[0][0, 1]) and radar.timestep_minutes == 6
    with pytest.raises(RadarInputError):
        frames_from_json({"frames": [[[1, 2], [3]]]}, "dBZ")  # ragged
