"""Radar sequences (generator invariants, folder loader), baselines, verification, training and export."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from modelrepo.card import ModelCard
from modelrepo.radar import from_network, rollout_numpy, to_network
from training.data.radar import (
    REGIMES,
    RadarParams,
    generate_sequence,
    load_frame_folder,
    regime_params,
    time_from_name,
)
from training.loop import Run
from training.nets.nowcaster import Nowcaster, rollout
from training.tasks.nowcast import NowcastConfig, radar_spec, train_nowcaster
from training.tasks.nowcast_verify import forecast_lk, forecast_persistence, verify

P = RadarParams()
SPEC = radar_spec(NowcastConfig())


@pytest.fixture(scope="module")
def seqs() -> np.ndarray:
    return np.stack([generate_sequence(100 + i, 13) for i in range(6)])


def test_sequences_have_the_documented_shape_and_values(seqs) -> None:
    assert seqs.shape == (6, 13, P.size, P.size) and seqs.dtype == np.float32
    dry = seqs == P.zerovalue
    assert np.all(dry | ((seqs >= P.rain_threshold) & (seqs <= P.max_dbz)))  # no rain, or rain in range
    wet = (~dry).mean(axis=(2, 3))
    assert wet.min() > 0.02 and wet.max() < 0.9  # rain and dry area in every frame
    assert (seqs >= 40).any()  # convective cores exist


def test_generator_is_deterministic_by_seed() -> None:
    np.testing.assert_array_equal(generate_sequence(7, 4), generate_sequence(7, 4))
    assert not np.array_equal(generate_sequence(7, 4), generate_sequence(8, 4))


def test_motion_really_moves(seqs) -> None:
    from pysteps import motion

    lk = motion.get_method("LK")
    speeds = []
    for s in seqs:
        v = lk(s[:3], verbose=False)  # (2, H, W) px per step
        speeds.append(float(np.hypot(*v).mean()))
    assert min(speeds) > 0.3 and max(speeds) < 8  # the documented 1-5 px per step, give or take the estimate


def test_growth_decay_and_initiation_defeat_pure_extrapolation(seqs) -> None:
    obs, truth = seqs[:, :3], seqs[:, 3:]
    lk = forecast_lk(obs, 10, SPEC)
    m = np.isfinite(lk[:, 4])  # +30 min
    diff = truth[:, 4][m] - lk[:, 4][m]
    both_wet = (truth[:, 4][m] > P.rain_threshold) & (lk[:, 4][m] > P.rain_threshold)
    assert (diff[both_wet] > 5).mean() > 0.05 and (diff[both_wet] < -5).mean() > 0.05  # growth and decay
    new = (truth[:, 4][m] > 20) & (lk[:, 4][m] == P.zerovalue)
    gone = (truth[:, 4][m] == P.zerovalue) & (lk[:, 4][m] > 20)
    assert new.mean() > 0.005 and gone.mean() > 0.005  # initiation and dissipation


def test_pure_translation_is_solved_by_extrapolation() -> None:
    """The check above is meaningful: with evolution and growth off, LK extrapolation is nearly perfect."""
    still = replace(
        P,
        tau_minutes=1e12,
        growth_dbz=0.0,
        rotation_rad=0.0,
        deformation=0.0,
        swirl_px=0.0,
        motion_drift=0.0,
    )
    s = generate_sequence(3, 6, still)[None]
    lk = forecast_lk(s[:, :3], 1, SPEC)
    m = np.isfinite(lk[:, 0])
    assert np.abs(lk[:, 0][m] - s[:, 3][m]).mean() < 0.5
    assert np.abs(s[:, 2] - s[:, 3]).mean() > 2 * np.abs(lk[:, 0][m] - s[:, 3][m]).mean()  # persistence is worse


def test_persistence_and_lk_baselines(seqs) -> None:
    obs = seqs[:, :3]
    pers = forecast_persistence(obs, 4)
    assert pers.shape == (6, 4, P.size, P.size) and np.array_equal(pers[:, 3], obs[:, -1])
    lk = forecast_lk(obs, 4, SPEC)
    assert lk.shape == pers.shape
    assert np.isnan(lk[:, 3]).any()  # inflow has no value: verified only where it does
    assert np.all(np.isnan(lk) | (lk == P.zerovalue) | (lk >= P.rain_threshold))


def test_verification_scores_a_perfect_and_a_dry_forecast(seqs) -> None:
    truth = seqs[:, 3:6]
    mask = np.ones(truth.shape, bool)
    s = verify(truth, {"perfect": truth, "dry": np.full_like(truth, P.zerovalue)}, mask)
    assert s["perfect"]["mae_dbz"] == [0.0] * 3 and s["perfect"]["csi_30dbz"] == [1.0] * 3
    assert s["perfect"]["fss_30dbz_8km"] == [1.0] * 3
    assert s["dry"]["csi_30dbz"] == [0.0] * 3 and min(s["dry"]["mae_dbz"]) > 1


def write_series(root, n: int = 6, step_min: int = 6, shape=(16, 16)) -> None:
    t0 = datetime(2026, 7, 1, 12, 0)
    for i in range(n):
        t = t0 + timedelta(minutes=step_min * i)
        np.save(root / f"radar_{t:%Y%m%d%H%M}.npy", np.full(shape, 10.0 + i, np.float32))


def test_frame_folder_is_ordered_by_time(tmp_path) -> None:
    write_series(tmp_path)
    f = load_frame_folder(tmp_path)
    assert f.frames.shape == (6, 16, 16) and f.timestep_minutes == 6
    assert [float(x[0, 0]) for x in f.frames] == [10, 11, 12, 13, 14, 15]
    assert time_from_name("x_20260701T1206.h5") == datetime(2026, 7, 1, 12, 6)


def test_frame_folder_refuses_uneven_steps_and_shapes(tmp_path) -> None:
    write_series(tmp_path)
    (tmp_path / "radar_202607011300.npy").write_bytes((tmp_path / "radar_202607011200.npy").read_bytes())
    with pytest.raises(ValueError, match="not even"):
        load_frame_folder(tmp_path)
    other = tmp_path / "b"
    other.mkdir()
    write_series(other, n=2)
    np.save(other / "radar_202607011212.npy", np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="shape"):
        load_frame_folder(other)


def test_frame_folder_manifest(tmp_path) -> None:
    for i, name in enumerate(["c.npy", "a.npy", "b.npy"]):
        np.save(tmp_path / name, np.full((4, 4), float(i), np.float32))
    manifest = {"a.npy": "2026-07-01T12:06:00", "b.npy": "2026-07-01T12:12:00", "c.npy": "2026-07-01T12:00:00"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    f = load_frame_folder(tmp_path)
    assert [float(x[0, 0]) for x in f.frames] == [0, 1, 2]


def test_rollout_feeds_its_own_predictions_back() -> None:
    torch.manual_seed(0)
    m = Nowcaster(base=4, depth=2).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        out = rollout(m, x, 5)
        first = m(x)
        second = m(torch.cat([x[:, -1:], first], dim=1))
    assert out.shape == (1, 5, 16, 16)
    torch.testing.assert_close(out[:, :2], first)
    torch.testing.assert_close(out[:, 2:4], second)


def test_tiny_training_lowers_the_loss_and_exports_with_parity(tmp_path) -> None:
    cfg = NowcastConfig(
        n_train=12,
        n_val=4,
        n_test=3,
        train_size=48,
        crop=32,
        test_size=48,
        rollout=2,
        base=8,
        depth=2,
        steps=60,
        batch_size=4,
        lr=3e-3,
        workers=1,
        out=str(tmp_path / "runs"),
        compare=str(Path(__file__).resolve().parents[2] / "models" / "unet_nowcast"),
        train_regimes="base,line,fast",
        n_regime_test=2,
    )
    r = train_nowcaster(cfg, run=Run(export_to=tmp_path / "models", progress=False))
    hist = r["history"]
    assert hist[0]["step"] == 0 and hist[-1]["val_loss"] < 0.9 * hist[0]["val_loss"]
    v = r["verification"]
    # --compare: the committed model, rolled out with ONNX Runtime on the same sequences and pixels
    assert set(v["methods"]) == {"unet_nowcast", "unet_nowcast (committed)", "persistence", "extrapolation_lk"}
    committed, persistence = v["methods"]["unet_nowcast (committed)"], v["methods"]["persistence"]
    assert committed["mae_dbz"][-1] < persistence["mae_dbz"][-1]
    assert v["lead_minutes"] == [6 * i for i in range(1, 11)]
    assert all(len(s) == 10 for s in v["methods"]["unet_nowcast"].values())
    for png in (r["scores_plot"], r["case_plot"], r["regimes_plot"]):
        assert open(png, "rb").read(4) == b"\x89PNG"
    # every regime verified on its own held-out sequences, and all of them pooled, every method alike
    by = v["by_regime"]
    assert by["cases"] == {"base": 3} | {r: 2 for r in REGIMES if r != "base"}
    assert set(by["regimes"]) == set(REGIMES) and set(by["pooled"]) == set(v["methods"])
    assert by["regimes"]["base"] == v["methods"]  # the base regime is the test split itself
    assert all(len(s) == 10 for m in by["regimes"]["fast"].values() for s in m.values())
    assert "mae_beats_persistence_all_leads" in by["targets"]["line"]
    assert "Per weather regime" in (tmp_path / "runs/unet_nowcast/verification.md").read_text()

    card = ModelCard.load(tmp_path / "models" / "unet_nowcast" / "card.json")
    assert card.task == "nowcasting" and card.radar.frames_in == 3 and card.input.pad_multiple == 4
    assert card.verification["methods"]["persistence"]["mae_dbz"] == v["methods"]["persistence"]["mae_dbz"]
    assert card.verification["by_regime"]["pooled"] == by["pooled"]
    assert card.hyperparameters["train_regimes"] == "base,line,fast"
    assert '; regime fast: {"speed_px": [8.0, 15.0]' in card.training.description  # the mix's provenance
    assert "mae_dbz_60min" in card.metrics
    # the exported graph, rolled out with ONNX Runtime, gives the PyTorch forecast (another size too)
    sess = ort.InferenceSession(str(tmp_path / "models/unet_nowcast/1/model.onnx"), providers=["CPUExecutionProvider"])
    model = Nowcaster(base=8, depth=2)
    model.load_state_dict(torch.load(tmp_path / "runs/unet_nowcast/model.pt")["state_dict"])
    model.eval()
    seq = generate_sequence(5, 3, replace(P, size=40))
    x = to_network(seq, card.radar)[None]
    ours = rollout_numpy(lambda a: sess.run(None, {"input": a})[0], x, 10)
    with torch.no_grad():
        ref = rollout(model, torch.from_numpy(x), 10).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    assert np.abs(from_network(ours, card.radar) - from_network(ref, card.radar)).max() < 0.01


def test_weather_regimes_have_the_property_they_are_named_for() -> None:
    from skimage.registration import phase_cross_correlation

    def wet_seqs(regime: str) -> list[np.ndarray]:  # medians below are over the sequences with rain
        seqs = [generate_sequence(300 + i, 2, regime_params(regime, 96)) for i in range(6)]
        return [s for s in seqs if (s[0] > P.rain_threshold).mean() > 0.02]

    def shift(regime: str) -> float:  # px per step between consecutive frames
        return float(np.median([np.hypot(*phase_cross_correlation(s[0], s[1])[0]) for s in wet_seqs(regime)]))

    def wet(regime: str) -> float:
        return float(np.median([(s > P.rain_threshold).mean() for s in wet_seqs(regime)]))

    def elongation(regime: str) -> float:  # the spectrum's power: spread along its largest / smallest axis
        k = np.stack(np.meshgrid(np.arange(96) - 48, np.arange(96) - 48, indexing="ij")).reshape(2, -1)
        out = []
        for s in wet_seqs(regime):
            power = np.abs(np.fft.fftshift(np.fft.fft2(s[0] - s[0].mean()))) ** 2
            ev = np.linalg.eigvalsh((k * power.ravel()) @ k.T)
            out.append(np.sqrt(ev[-1] / ev[0]))
        return float(np.median(out))

    assert shift("slow") <= 1.5 < 7.0 < shift("fast")
    assert wet("stratiform") > 0.4 > 0.2 > wet("convective")
    assert elongation("line") > 1.6 > elongation("base")
    with pytest.raises(ValueError, match="unknown radar regime"):
        regime_params("monsoon")


def test_frame_folder_of_odim_files_uses_their_own_times(tmp_path) -> None:
    from modelrepo.radar_io import write_odim

    t0 = datetime(2026, 7, 1, 12, 0)
    for i, name in enumerate(["c.h5", "a.h5", "b.h5"]):  # names say nothing about time
        write_odim(tmp_path / name, np.full((8, 8), 20.0 + i), t0 + timedelta(minutes=6 * i))
    f = load_frame_folder(tmp_path)
    assert f.timestep_minutes == 6 and f.times[0] == t0
    assert [float(x[0, 0]) for x in f.frames] == [20, 21, 22]


def test_the_convlstm_nowcaster_forecasts_the_hour_in_one_application_and_exports_with_parity(tmp_path) -> None:
    from training.export import onnx_export, parity_check
    from training.nets.convlstm import ConvLSTMCell, ConvLSTMNowcaster

    cell = ConvLSTMCell(4)
    h = c = torch.zeros(1, 4, 6, 6)
    h1, c1 = cell(torch.rand(1, 4, 6, 6), h, c)
    assert h1.shape == c1.shape == (1, 4, 6, 6) and float(h1.abs().max()) < 1.0  # o * tanh(c)
    torch.manual_seed(0)
    m = ConvLSTMNowcaster(frames_out=10, hidden=8).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        y = m(x)
        assert y.shape == (2, 10, 32, 32)
        torch.testing.assert_close(rollout(m, x, 10), y)  # one application is the whole hour
        # the order of the observed frames matters (it is a recurrence, not a bag of frames)
        assert not torch.allclose(m(x.flip(1)), y)
    path = tmp_path / "convlstm.onnx"
    onnx_export(m, x[:1], path, output_name="forecast", dynamic_spatial=True)
    assert parity_check(m, path, [x.numpy(), torch.rand(1, 3, 48, 40).numpy()]) < 1e-4


def test_convlstm_config_needs_one_application(tmp_path) -> None:
    from training.tasks.nowcast import build_nowcaster

    cfg = NowcastConfig(arch="convlstm", rollout=3)
    with pytest.raises(ValueError, match="--rollout 1"):
        build_nowcaster(cfg, radar_spec(cfg))
    ok = NowcastConfig(arch="convlstm", rollout=1, base=4)
    assert radar_spec(ok).frames_out == 10 and build_nowcaster(ok, radar_spec(ok)).frames_out == 10


def test_soft_csi_loss_rewards_keeping_heavy_cores_and_skips_thresholds_with_no_event() -> None:
    from training.tasks.nowcast_losses import soft_csi_loss

    truth = torch.zeros(2, 3, 16, 16)
    truth[:, :, 4:10, 4:10] = 0.6  # 35 dBZ on the network scale
    thresholds, tau = (0.3, 0.5), 0.04
    perfect = soft_csi_loss(truth, truth, thresholds, tau).item()
    softened = soft_csi_loss(truth * 0.7, truth, thresholds, tau).item()  # the core falls below 0.5
    displaced = soft_csi_loss(torch.roll(truth, 6, dims=-1), truth, thresholds, tau).item()
    assert perfect < 0.1 < softened and perfect < displaced
    # no observed event above the threshold: the term is 0 whatever is forecast (the MAE sees false alarms)
    assert soft_csi_loss(truth, torch.zeros_like(truth), thresholds, tau).item() == 0.0
    masked = torch.zeros_like(truth)
    masked[..., :, :8] = 1  # only the left half counts: a forecast wrong only on the right half is perfect
    wrong_right = truth.clone()
    wrong_right[..., 8:] = 0
    perfect_left = soft_csi_loss(truth, truth, thresholds, tau, masked).item()
    assert soft_csi_loss(wrong_right, truth, thresholds, tau, masked).item() == pytest.approx(perfect_left, abs=1e-6)
    assert soft_csi_loss(wrong_right, truth, thresholds, tau).item() > 0.3
    pred = (truth * 0.7).requires_grad_()
    soft_csi_loss(pred, truth, thresholds, tau).backward()
    assert pred.grad[:, :, 4:10, 4:10].lt(0).all()  # the gradient pushes the softened core back up
