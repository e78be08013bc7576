"""POST /nowcast against the committed nowcaster: every input form (JSON, npy, npz, PNG, ODIM HDF5,
NetCDF), every output form, units and Z-R, no-data masks, georeferencing, and bad inputs."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import datetime, timedelta

import httpx
import netCDF4
import numpy as np
import pytest
from PIL import Image

from modelrepo.card import ModelCard, ranking_key
from modelrepo.radar import dbz_to_rate
from tests.conftest import MODELS
from tests.radar_files import PROJDEF, npy_bytes, png_frame, write_netcdf_frame, write_odim
from training.data.radar import RadarParams, generate_sequence

# the default nowcaster: the committed one that ranks first (headline metric, then the smaller network)
CARD = max(
    (ModelCard.load(p) for p in MODELS.glob("*/card.json") if ModelCard.load(p).task == "nowcasting"), key=ranking_key
)
SPEC = CARD.radar
T0 = datetime(2026, 7, 1, 12, 0)
OCTET = {"content-type": "application/octet-stream"}


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """Four 48 x 56 frames in dBZ (0.5 dBZ steps, so that PNG and ODIM carry them exactly)."""
    seq = generate_sequence(42, 4, replace(RadarParams(), size=56))[:, :48]
    return np.round(seq * 2) / 2


def as_json(client, frames: np.ndarray, query: str = "", **extra):
    """POST the frames as JSON, NaN (no data) as null."""
    lists = np.where(np.isnan(frames), None, frames.astype(object)).tolist()
    return client.post(f"/nowcast{query}", json={"frames": lists, "timestep_minutes": 6} | extra)


def forecast(r) -> np.ndarray:
    assert r.status_code == 200, r.text
    return np.array(r.json()["frames"], dtype=np.float64)  # null -> nan


def test_json_in_json_out(client, frames) -> None:
    r = as_json(client, frames)
    body = r.json()
    fc = forecast(r)
    assert fc.shape == (10, 48, 56) and body["lead_times_minutes"] == list(range(6, 61, 6))
    assert body["unit"] == "dBZ" and body["nodata_mask"] is None and body["warnings"] == []
    assert np.all((fc == SPEC.zerovalue) | ((fc >= SPEC.rain_threshold) & (fc <= SPEC.max_dbz)))
    assert (fc > 30).any() and (fc == SPEC.zerovalue).any()  # it forecasts rain, and dry areas
    assert body["model"]["name"] == CARD.name == "lagrangian_nowcast"
    # the held-out table, not the card's per-regime, calibration and time-step tables
    summary = body["verification"]
    assert summary["methods"] == CARD.verification["methods"] and summary["lead_minutes"] == list(range(6, 61, 6))
    assert "by_regime" in CARD.verification and "by_regime" not in summary and "timesteps" not in summary
    assert len(json.dumps(summary)) < len(json.dumps(CARD.verification)) / 4
    assert body["input"] == {"frames_received": 4, "frames_used": 3, "formats": ["json"] * 4}
    assert r.headers["x-lead-times-minutes"].startswith("6,12,18")


def test_only_the_last_three_frames_count(client, frames) -> None:
    other_first = frames.copy()
    other_first[0] = SPEC.zerovalue
    np.testing.assert_allclose(forecast(as_json(client, frames)), forecast(as_json(client, other_first)))
    assert not np.allclose(forecast(as_json(client, frames[:3])), forecast(as_json(client, frames)))


def test_npy_body_gives_the_json_forecast(client, frames) -> None:
    r = client.post("/nowcast?timestep_minutes=6", content=npy_bytes(frames.astype(np.float32)), headers=OCTET)
    np.testing.assert_allclose(forecast(r), forecast(as_json(client, frames)), atol=1e-3)


def test_missing_time_step_is_assumed_and_said(client, frames) -> None:
    r = client.post("/nowcast", content=npy_bytes(frames.astype(np.float32)), headers=OCTET)
    assert r.status_code == 200 and "assumed" in r.json()["warnings"][0] and "x-warning" in r.headers


def test_npz_with_times_and_metadata_echoes_them(client, frames) -> None:
    buf = io.BytesIO()
    stamps = np.array([(T0 + timedelta(minutes=6 * i)).isoformat() for i in range(4)])
    meta = {"projection": PROJDEF, "x1": 0.0, "y1": 0.0, "x2": 56000.0, "y2": 48000.0, "xpixelsize": 1000.0}
    np.savez(buf, frames=frames.astype(np.float32), timestamps=stamps, metadata=np.str_(json.dumps(meta)))
    r = client.post("/nowcast", content=buf.getvalue(), headers=OCTET)
    body = r.json()
    assert r.status_code == 200, r.text
    assert body["georef"] == meta and body["reference_time"] == (T0 + timedelta(minutes=18)).isoformat()
    assert body["valid_times"][0] == (T0 + timedelta(minutes=24)).isoformat()


def test_png_files_ordered_by_field_name_or_order(client, frames) -> None:
    expected = forecast(as_json(client, frames))
    files = [(f"frame{i}", (f"f{i}.png", png_frame(frames[i]), "image/png")) for i in range(4)]
    shuffled = [files[2], files[0], files[3], files[1]]
    np.testing.assert_allclose(forecast(client.post("/nowcast", files=shuffled)), expected, atol=1e-3)
    renamed = [("files", (f"x{i}.png", png_frame(frames[i]), "image/png")) for i in (3, 1, 0, 2)]
    r = client.post("/nowcast?order=x0.png,x1.png,x2.png,x3.png", files=renamed)
    np.testing.assert_allclose(forecast(r), expected, atol=1e-3)
    bad = client.post("/nowcast?order=x0.png,x1.png", files=renamed)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_order"


def odim_files(tmp_path, frames, minutes=(0, 6, 12, 18), **kw) -> list:
    out = []
    for i, m in enumerate(minutes):
        p = write_odim(tmp_path / f"c{i}.h5", frames[i], T0 + timedelta(minutes=m), **kw)
        out.append(("files", (p.name, p.read_bytes(), "application/x-hdf5")))
    return out


def test_odim_files_sorted_by_their_own_times(client, frames, tmp_path) -> None:
    files = odim_files(tmp_path, frames, zr=(300.0, 1.5))
    r = client.post("/nowcast", files=files[::-1])  # sent newest first: the times inside decide
    np.testing.assert_allclose(forecast(r), forecast(as_json(client, frames)), atol=1e-3)
    body = r.json()
    assert body["input"]["formats"] == ["odim"] * 4 and body["reference_time"] == "2026-07-01T12:18:00"
    assert body["georef"]["projdef"] == PROJDEF and body["georef"]["LL_lat"] == 46.9
    assert body["zr"] == {"a": 300.0, "b": 1.5, "source": "file"}  # the file's own Z-R


def test_odim_uneven_times_are_refused(client, frames, tmp_path) -> None:
    r = client.post("/nowcast", files=odim_files(tmp_path, frames, minutes=(0, 6, 12, 24)))
    assert r.status_code == 422 and r.json()["error"]["code"] == "uneven_timesteps"


def test_five_minute_data_is_forecast_in_its_own_steps_where_verified(client, frames, tmp_path) -> None:
    """The Lagrangian nowcaster's card holds the frame spacings it was verified at (4-8 minutes,
    ``training.nowcast_timesteps``): 5-minute ODIM files are forecast in 5-minute steps, with a warning;
    10-minute frames, and 5-minute frames for a model without such a range, are refused with the reason."""
    assert CARD.radar.timestep_range_minutes == (4.0, 8.0)
    r = client.post("/nowcast", files=odim_files(tmp_path, frames, minutes=(0, 5, 10, 15)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["lead_times_minutes"] == [5 * (i + 1) for i in range(CARD.radar.max_steps)]
    assert r.headers["x-lead-times-minutes"].startswith("5,10,15")
    assert any("5-minute steps" in w for w in body["warnings"])
    r = as_json(client, frames, timestep_minutes=10)
    err = r.json()["error"]
    assert r.status_code == 422 and err["code"] == "timestep_mismatch" and "from 4 to 8" in err["message"]
    r = client.post("/nowcast?model=unet_nowcast", files=odim_files(tmp_path, frames, minutes=(0, 5, 10, 15)))
    err = r.json()["error"]
    assert r.status_code == 422 and err["code"] == "timestep_mismatch" and "6 minutes apart" in err["message"]


def test_geotiff_frames_are_ordered_by_their_time_and_keep_their_georeferencing(client, frames) -> None:
    from tests.radar_files import geotiff_frame

    files = [
        ("files", (f"t{i}.tif", geotiff_frame(frames[i], T0 + timedelta(minutes=6 * i)), "image/tiff"))
        for i in (2, 0, 3, 1)  # sent out of order: the DateTime tags order them
    ]
    r = client.post("/nowcast", files=files)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(forecast(r), forecast(as_json(client, frames)), atol=1e-3)
    body = r.json()
    assert body["georef"]["projection"] == "EPSG:3035" and body["georef"]["x1"] == 4_000_000.0
    assert body["input"]["formats"] == ["geotiff"] * 4
    assert body["reference_time"] == (T0 + timedelta(minutes=18)).isoformat()  # the latest DateTime


def test_netcdf_files_keep_their_georeferencing(client, frames, tmp_path) -> None:
    files = []
    for i in range(4):
        p = write_netcdf_frame(tmp_path / f"n{i}.nc", frames[i], T0 + timedelta(minutes=6 * i))
        files.append(("files", (p.name, p.read_bytes(), "application/x-netcdf")))
    r = client.post("/nowcast", files=files)
    np.testing.assert_allclose(forecast(r), forecast(as_json(client, frames)), atol=1e-3)
    g = r.json()["georef"]
    assert g["x1"] == -128000.0 and g["y2"] == 0.0 and g["projection"] == PROJDEF


def test_netcdf_output_is_cf_with_lead_seconds(client, frames, tmp_path) -> None:
    files = odim_files(tmp_path, frames)
    r = client.post("/nowcast?output=netcdf&steps=4", files=files)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-netcdf"
    with netCDF4.Dataset("f.nc", memory=r.content) as ds:
        v = ds["reflectivity"]
        assert v.dimensions == ("time", "y", "x") and v.shape == (4, 48, 56) and v.units == "dBZ"
        assert list(ds["time"][:]) == [360.0, 720.0, 1080.0, 1440.0] and ds["time"].units == "s"
        assert ds["forecast_reference_time"].units == "seconds since 2026-07-01 12:18:00"
        assert ds["crs"].proj4_params == PROJDEF
        assert json.loads(ds.convserve_georef)["LL_lon"] == 3.5
        np.testing.assert_allclose(np.ma.filled(v[:], np.nan), forecast(as_json(client, frames))[:4], atol=1e-3)


def test_npz_output(client, frames) -> None:
    r = as_json(client, frames, "?output=npz&output_unit=mm/h", metadata={"institution": "test"})
    z = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert z["forecast"].shape == (10, 48, 56) and list(z["lead_times_minutes"]) == list(range(6, 61, 6))
    assert str(z["unit"]) == "mm/h" and z["nodata_mask"].shape == (48, 56)
    meta = json.loads(str(z["metadata"]))
    assert meta["georef"] == {"institution": "test"} and meta["verification"]["methods"] == CARD.verification["methods"]
    assert "by_regime" not in meta["verification"] and meta["model"] == CARD.name


def test_png_strip_and_gif(client, frames) -> None:
    png = Image.open(io.BytesIO(as_json(client, frames, "?output=png&steps=4").content))
    assert png.format == "PNG" and png.width > 4 * png.height  # observed + 4 forecasts side by side
    gif = Image.open(io.BytesIO(as_json(client, frames, "?output=gif").content))
    assert gif.format == "GIF" and gif.n_frames == 11


def test_rain_rate_in_and_out_with_zr(client, frames) -> None:
    dbz_fc = forecast(as_json(client, frames))
    rate = dbz_to_rate(frames, 200, 1.6, SPEC.rain_threshold)
    r = as_json(client, rate, "?input_unit=mm/h")
    assert r.json()["unit"] == "mm/h"  # the input's unit by default
    expected = dbz_to_rate(dbz_fc, 200, 1.6, SPEC.rain_threshold)
    np.testing.assert_allclose(forecast(r), expected, rtol=2e-3, atol=2e-3)
    other = as_json(client, rate, "?input_unit=mm/h&zr_a=300&zr_b=1.5&output_unit=dBZ")
    assert other.json()["zr"]["source"] == "query"
    assert not np.allclose(forecast(other), dbz_fc, atol=0.5)  # another Z-R: other reflectivities
    assert as_json(client, rate, "?input_unit=mm/h&zr_a=300").status_code == 422


def test_no_data_is_masked_not_dried(client, frames) -> None:
    holes = frames.copy()
    holes[:, :10, :12] = np.nan  # outside radar coverage
    r = as_json(client, holes)
    fc, body = forecast(r), r.json()
    mask = np.array(body["nodata_mask"], bool)
    assert mask[:10, :12].all() and mask.sum() == 120
    assert np.isnan(fc[:, :10, :12]).all() and not np.isnan(fc[:, ~mask]).any()
    sentinel = np.where(np.isnan(holes), -999.0, holes)
    r2 = as_json(client, sentinel, "?nodata=-999")
    np.testing.assert_allclose(forecast(r2), fc, equal_nan=True)


def test_all_dry_input_gives_a_dry_forecast(client) -> None:
    dry = np.full((3, 24, 24), SPEC.zerovalue)
    fc = forecast(as_json(client, dry))
    assert np.all(fc == SPEC.zerovalue)
    rate = forecast(as_json(client, np.zeros((3, 24, 24)), "?input_unit=mm/h"))
    assert np.all(rate == 0)


def test_any_size_and_steps(client, frames) -> None:
    odd = frames[:, :37, :50]
    r = as_json(client, odd, "?steps=3")
    assert forecast(r).shape == (3, 37, 50) and r.json()["lead_times_minutes"] == [6, 12, 18]
    r = as_json(client, odd, "?steps=11")
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_steps"


@pytest.mark.parametrize(
    ("kind", "code", "status"),
    [
        ("two_frames", "too_few_frames", 422),
        ("unequal", "unequal_shapes", 422),
        ("all_nan", "no_data", 422),
        ("complex", "wrong_dtype", 415),
        ("pickle", "pickle_refused", 422),
        ("ragged", "wrong_shape", 422),
        ("text", "unsupported_media_type", 415),
        ("colour_png", "unsupported_png", 422),
    ],
)
def test_bad_inputs_get_clear_errors_and_the_service_stays_healthy(client, frames, kind, code, status) -> None:
    f32 = frames.astype(np.float32)
    if kind == "two_frames":
        r = as_json(client, frames[:2])
    elif kind == "unequal":
        files = [("files", ("a.npy", npy_bytes(f32[:2]), "x")), ("files", ("b.npy", npy_bytes(f32[2, :40]), "x"))]
        r = client.post("/nowcast", files=files)
    elif kind == "all_nan":
        r = client.post("/nowcast", content=npy_bytes(np.full((3, 8, 8), np.nan, np.float32)), headers=OCTET)
    elif kind == "complex":
        r = client.post("/nowcast", content=npy_bytes(f32.astype(np.complex64)), headers=OCTET)
    elif kind == "pickle":
        r = client.post("/nowcast", content=npy_bytes(np.array([{"x": 1}] * 3, object), True), headers=OCTET)
    elif kind == "ragged":
        r = client.post("/nowcast", json={"frames": [[[1, 2], [3]]] * 3})
    elif kind == "text":
        r = client.post("/nowcast", content=b"hello", headers={"content-type": "text/plain"})
    else:
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), "red").save(buf, format="PNG")
        r = client.post("/nowcast", files=[("files", ("a.png", buf.getvalue(), "image/png"))] * 3)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]
    assert client.get("/health/ready").status_code == 200


def test_nowcast_over_a_real_http_server(server, frames, tmp_path) -> None:
    files = [("files", (n, d, t)) for _, (n, d, t) in odim_files(tmp_path, frames)]
    r = httpx.post(f"{server}/nowcast?steps=2", files=files, timeout=60)
    assert r.status_code == 200, r.text
    assert np.array(r.json()["frames"], dtype=float).shape == (2, 48, 56)
    assert "unet_nowcast" in [m["name"] for m in httpx.get(f"{server}/models").json()["models"]]


@pytest.mark.parametrize("value", [0.0, -15.0, -32.0])
def test_the_inputs_no_rain_value_is_kept_in_every_format(client, frames, value: float) -> None:
    dry = frames < SPEC.rain_threshold
    theirs = np.where(dry, value, frames)  # the same radar data in another no-rain convention
    reference = forecast(as_json(client, frames))
    r = as_json(client, theirs)
    fc, body = forecast(r), r.json()
    assert body["no_rain_value"] == value and body["no_rain_source"] == "detected"
    assert r.headers["x-no-rain-value"] == f"{value:g}"
    rain = fc >= SPEC.rain_threshold
    assert np.all(fc[~rain] == value) and (~rain).any()  # exactly the caller's value where it is dry
    np.testing.assert_array_equal(fc[rain], reference[rain])  # and the convention changes nothing else
    assert np.array_equal(rain, reference >= SPEC.rain_threshold)
    z = np.load(io.BytesIO(as_json(client, theirs, "?output=npz").content), allow_pickle=False)
    assert float(z["no_rain_value"]) == value and np.all(z["forecast"][~rain] == value)
    nc = as_json(client, theirs, "?output=netcdf")
    with netCDF4.Dataset("f.nc", memory=nc.content) as ds:
        v = np.ma.filled(ds["reflectivity"][:], np.nan)
        assert np.all(v[~rain] == value) and float(ds.no_rain_value) == value


def test_no_rain_from_the_query_and_from_odim_undetect(client, frames, tmp_path) -> None:
    r = as_json(client, frames, "?no_rain=-10")
    assert r.json()["no_rain_source"] == "query" and np.all(forecast(r)[forecast(r) < SPEC.rain_threshold] == -10)
    odim = np.where(frames < SPEC.rain_threshold, -32.0, frames)  # written as ODIM undetect (raw 0)
    r = client.post("/nowcast", files=odim_files(tmp_path, odim))
    body = r.json()
    assert body["no_rain_source"] == "file" and body["no_rain_value"] == -32.0
    assert as_json(client, frames, "?no_rain=20").status_code == 422  # not below the rain threshold
