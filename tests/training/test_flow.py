"""The in-graph optical flow, semi-Lagrangian extrapolation and the Lagrangian nowcaster built on them."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
import torch

from modelrepo.radar import to_network
from training.data.radar import generate_sequence
from training.export import onnx_export, parity_check
from training.nets.flow import extrapolate, gaussian_blur, lucas_kanade, trajectories_inside, warp
from training.nets.lagrangian import LagrangianNowcaster
from training.tasks.nowcast import NowcastConfig, build_nowcaster, radar_spec

SPEC = radar_spec(NowcastConfig())


def _rain(size: int = 64, seed: int = 0) -> torch.Tensor:
    """A smooth rain-like field on the network scale (zero where dry), (1, 1, size, size)."""
    g = torch.Generator().manual_seed(seed)
    f = gaussian_blur(torch.randn(1, 1, size, size, generator=g), 3.0)
    f = f / f.std()
    return torch.where(f > 0.3, 0.1 + 0.3 * f, torch.zeros_like(f))


@pytest.mark.parametrize("shift", [(1.5, -2.5), (-4.0, 3.0), (0.0, 0.0)])
def test_lucas_kanade_recovers_a_translation_where_it_rains(shift) -> None:
    v = torch.zeros(1, 2, 96, 96)
    v[:, 0], v[:, 1] = shift
    f0 = _rain(96)
    frames = torch.cat([f0, warp(f0, v), warp(f0, v, 2.0)], dim=1)  # moving by ``shift`` px per step
    est = lucas_kanade(frames)
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))  # away from the repeated edges
    rain = (frames[:, -1:] > 0)[inner].expand(-1, 2, -1, -1)
    err = (est[inner] - v[inner])[rain].abs()
    assert float(err.median()) < 0.15 and float(err.quantile(0.9)) < 0.5


def test_extrapolation_along_a_uniform_field_is_the_shift_by_k_steps() -> None:
    blob = torch.zeros(1, 1, 24, 24)
    blob[0, 0, 8, 5] = 1.0
    v = torch.zeros(1, 2, 24, 24)
    v[:, 1] = 2.0  # 2 px per step to the right
    steps = extrapolate(blob, v, 3)
    assert [divmod(int(s.argmax()), 24) for s in steps] == [(8, 7), (8, 9), (8, 11)]
    for k, s in enumerate(steps, start=1):  # sampled once per step: no blur accumulates
        torch.testing.assert_close(s, warp(blob, v, float(k)))
        assert float(s.max()) == pytest.approx(1.0)


def test_extrapolation_follows_curved_trajectories() -> None:
    """Solid rotation: trajectories through the field, not a straight line p - k v(p)."""
    n = 64
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32), indexing="ij")
    c, omega = (n - 1) / 2, 0.1
    v = torch.stack([omega * (xx - c), -omega * (yy - c)])[None]  # rotation about the centre
    blob = torch.exp(-((yy - c) ** 2 + (xx - c - 20) ** 2) / 4)[None, None]
    last = extrapolate(blob, v, 8)[-1][0, 0]
    got = np.unravel_index(int(last.argmax()), last.shape)
    angle = -8 * omega  # rotated by 0.8 rad, the radius (20 px) kept
    want = (c - 20 * np.sin(angle), c + 20 * np.cos(angle))
    assert np.hypot(got[0] - want[0], got[1] - want[1]) < 2.5
    assert abs(np.hypot(got[0] - c, got[1] - c) - 20) < 2.5


def test_an_untrained_lagrangian_nowcaster_is_pure_extrapolation_and_exports_with_parity(tmp_path) -> None:
    torch.manual_seed(0)
    m = LagrangianNowcaster(base=4, depth=2, motion_base=4).eval()
    x = torch.from_numpy(np.stack([to_network(generate_sequence(300 + i, 3, None), SPEC) for i in range(2)]))
    with torch.no_grad():
        y = m(x)
        assert y.shape == (2, 10, 128, 128)
        expected = torch.relu(torch.cat(extrapolate(x[:, -1:], lucas_kanade(x), 10), dim=1))
        torch.testing.assert_close(y, expected)  # both learned heads start at zero
        assert float((y[:, -1] - x[:, -1]).abs().mean()) > 0.005  # the echoes moved
    path = tmp_path / "lagrangian.onnx"
    onnx_export(m, x[:1], path, output_name="forecast", dynamic_spatial=True)
    assert "GridSample" in {n.op_type for n in onnx.load(str(path)).graph.node}
    assert parity_check(m, path, [x.numpy(), x[:1, :, :72, :56].numpy().copy()]) < 1e-4


def test_lagrangian_config_forecasts_the_hour_in_one_application() -> None:
    cfg = NowcastConfig(arch="lagrangian", rollout=3)
    with pytest.raises(ValueError, match="--rollout 1"):
        build_nowcaster(cfg, radar_spec(cfg))
    ok = NowcastConfig(arch="lagrangian", rollout=1, base=4)
    assert radar_spec(ok).frames_out == 10 and build_nowcaster(ok, radar_spec(ok)).frames_out == 10


def test_trajectories_inside_marks_where_inflow_comes_from_outside() -> None:
    f0 = _rain(64, seed=1)
    v = torch.zeros(1, 2, 64, 64)
    v[:, 1] = 3.0  # 3 px per step to the right: the left edge is fed from outside
    inside = trajectories_inside(torch.cat([f0, warp(f0, v), warp(f0, v, 2.0)], dim=1), 4)
    assert inside.shape == (1, 4, 64, 64)
    cols = inside[0].float().mean(dim=1)  # (steps, W): share of each column inside
    for k in range(4):
        reach = 3 * (k + 1)  # the first ~3 (k + 1) columns have their source left of the grid
        # (the flow estimated at the top and bottom rows is not exactly horizontal: a row or two leave)
        assert float(cols[k, : reach - 1].max()) == 0.0 and float(cols[k, reach + 2 :].min()) > 0.95


def test_the_masked_loss_ignores_pixels_outside_the_mask() -> None:
    from training.tasks.nowcast_losses import weighted_mae

    pred, target = torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)
    target[..., 0] = 1.0  # wrong only in the first column
    mask = torch.ones_like(target)
    mask[..., 0] = 0
    assert float(weighted_mae(pred, target, 2.0, mask)) == 0.0
    assert float(weighted_mae(pred, target, 2.0)) == pytest.approx(3.0 / 4)  # (1 + 2 * 1) on a quarter


def test_lead_weights_balance_the_leads_errors() -> None:
    from training.tasks.nowcast_losses import lead_weights, weighted_mae

    w = lead_weights(10, 0.5)
    assert float(w.mean()) == pytest.approx(1.0)
    assert float(w[0] / w[3]) == pytest.approx(2.0)  # lead 1 vs lead 4: 4 ** 0.5
    # errors that grow as the square root of the lead weigh alike per lead with power 0.5
    target = torch.zeros(1, 10, 2, 2)
    pred = torch.arange(1, 11, dtype=torch.float32).sqrt().view(1, 10, 1, 1).expand(1, 10, 2, 2)
    per_lead = (pred - target).abs() * w.view(1, -1, 1, 1)
    assert torch.allclose(per_lead[0, :, 0, 0], per_lead[0, 0, 0, 0].expand(10))
    assert float(weighted_mae(pred, target, 0.0, lead_power=0.5)) == pytest.approx(float(per_lead.mean()))
    assert float(weighted_mae(pred, target, 0.0)) == pytest.approx(float(pred.mean()))  # power 0: plain mean


def test_the_relative_loss_is_the_error_over_extrapolations_per_sequence_and_lead() -> None:
    from training.tasks.nowcast_losses import relative_mae

    target = torch.zeros(2, 3, 4, 4)
    reference = torch.full_like(target, 0.1)
    reference[1] = 0.4  # the second sequence is harder for extrapolation
    assert float(relative_mae(reference, target, reference, 0.0, None, 1e-3)) == pytest.approx(1.0)
    pred = reference / 2  # half extrapolation's error everywhere: 0.5, whatever the scale of each sequence
    assert float(relative_mae(pred, target, reference, 0.0, None, 1e-3)) == pytest.approx(0.5)
    pred = reference.clone()
    pred[1] = 0.0  # perfect on the hard sequence only: its ratio 0, the easy one's 1
    assert float(relative_mae(pred, target, reference, 0.0, None, 1e-3)) == pytest.approx(0.5)
    # the floor: where extrapolation is (nearly) perfect the ratio is taken against the floor
    assert float(relative_mae(torch.full_like(target, 0.01), target, target, 0.0, None, 0.02)) == pytest.approx(0.5)
    mask = torch.ones_like(target)
    mask[..., 0] = 0
    pred = reference.clone()
    pred[..., 0] = 5.0  # wrong only outside the mask
    assert float(relative_mae(pred, target, reference, 2.0, mask, 1e-3)) == pytest.approx(1.0)


def test_the_served_forecast_drops_sub_threshold_values_and_passes_the_gradient_straight_through() -> None:
    from modelrepo.radar import from_network
    from training.tasks.nowcast_losses import as_served, weighted_mae

    thr = SPEC.net_value(SPEC.rain_threshold)
    pred = torch.tensor([0.0, 0.5 * thr, 0.99 * thr, thr, 0.5], requires_grad=True)
    served = as_served(pred, thr)
    # the same values the service sends (from_network maps them to dBZ with the same rule)
    expect = torch.tensor([0.0, 0.0, 0.0, thr, 0.5])
    assert torch.equal(served.detach(), expect)
    assert np.allclose(from_network(served.detach().numpy(), SPEC), from_network(pred.detach().numpy(), SPEC))
    # a wet pixel forecast just below the threshold is a full miss, and its gradient still points up
    target = torch.full((1, 1, 1, 5), 0.3)
    loss = weighted_mae(as_served(pred.view(1, 1, 1, 5), thr), target, 0.0)
    loss.backward()
    assert float(loss) == pytest.approx(float((target.view(5) - expect).abs().mean()))
    assert bool((pred.grad[:4] < 0).all())  # every value below the wet target is pulled up, those served dry too
    assert float(pred.grad[4]) > 0  # and the one above it down


def _tiny(name: str, out, **kw) -> NowcastConfig:
    """A Lagrangian nowcaster small enough to train in seconds on 48 px sequences."""
    small = dict(
        name=name, arch="lagrangian", rollout=1, rollout_start=1, n_train=8, n_val=3, n_test=3, train_size=48,
        crop=32, test_size=48, base=4, depth=2, steps=20, batch_size=4, lr=3e-2, workers=1, out=str(out),
        n_regime_test=0,
    )  # fmt: skip
    return NowcastConfig(**(small | kw))


@pytest.fixture(scope="module")
def tiny_committed(tmp_path_factory):
    """A tiny Lagrangian nowcaster trained and exported once (the model folder); the tests leave it as it is."""
    from training.loop import Run
    from training.tasks.nowcast import train_nowcaster

    root = tmp_path_factory.mktemp("tiny")
    train_nowcaster(_tiny("lagrangian_cal", root / "runs"), run=Run(export_to=root / "models", progress=False))
    return root / "models" / "lagrangian_cal"


@pytest.fixture
def few_calibration_sequences(monkeypatch):
    import training.nowcast_calibrate as cal

    monkeypatch.setattr(cal, "N_VALIDATION", 3)  # per regime; 8 in use


def test_a_tiny_lagrangian_run_trains_masked_exports_and_re_measures_from_onnx(
    tmp_path, few_calibration_sequences
) -> None:
    from modelrepo.repository import check_model_dir
    from training.eval_repo import evaluate_entry
    from training.loop import Run
    from training.tasks.nowcast import config_from_card, train_nowcaster

    cfg = _tiny(
        "lagrangian_tiny", tmp_path / "runs", lr=NowcastConfig.lr, n_test=5, mask_inflow=True, relative=True,
        csi_weight=0.5, served_loss=True, flow_smooth=16.0, calibrate_rain=True, flow_reg=1e-3, flow_window=12.0,
        flow_conf_power=2.0,
    )  # fmt: skip
    r = train_nowcaster(cfg, run=Run(export_to=tmp_path / "models", progress=False))
    assert all(np.isfinite(h["val_loss"]) for h in r["history"]) and np.isfinite(r["history"][-1]["train_loss"])
    assert all(len(s) == 10 for s in r["verification"]["methods"]["lagrangian_tiny"].values())
    entry = check_model_dir(tmp_path / "models" / "lagrangian_tiny")
    assert entry.ok, entry.problems
    loss = entry.card.hyperparameters["loss"]
    assert entry.card.radar.frames_out == 10 and "trajectory starts inside" in loss and "divided by plain" in loss
    assert entry.card.architecture.kwargs["evolution"] == "lagrangian" and "as served" in loss
    assert entry.card.architecture.kwargs["flow_smooth"] == 16.0 and config_from_card(entry.card).flow_smooth == 16.0
    assert entry.card.architecture.kwargs["flow_reg"] == 1e-3 and config_from_card(entry.card).flow_window == 12.0
    assert entry.card.architecture.kwargs["flow_conf_power"] == 2.0 == config_from_card(entry.card).flow_conf_power
    # the rain decision value chosen on validation is the validation-best margin, in the card and served
    chosen = r["verification"]["rain_decision"]
    means = [np.mean(row) for row in chosen["mae"]]
    assert chosen["chosen_margin_dbz"] == chosen["margins_dbz"][int(np.argmin(means))]
    assert entry.card.radar.rain_decision_dbz == entry.card.radar.rain_threshold - chosen["chosen_margin_dbz"]
    assert "(chosen)" in (tmp_path / "runs/lagrangian_tiny/rain_decision.md").read_text()
    result = evaluate_entry(entry)  # make eval: the card's scores from the ONNX file, rolled out by ORT
    assert result.ok, result.message


def test_the_nowcast_ablation_switches_parts_off_and_restores_them(tmp_path) -> None:
    from training.loop import Run
    from training.nowcast_ablation import PARTS, ablation, forecast, load_lagrangian, table
    from training.tasks.nowcast import train_nowcaster

    cfg = _tiny("lagrangian_abl", tmp_path / "runs", n_test=2, steps=30)
    train_nowcaster(cfg, run=Run(export_to=tmp_path / "models", progress=False))  # 2 test cases export too
    model_dir = tmp_path / "models" / "lagrangian_abl"
    model, spec = load_lagrangian(model_dir)
    x = torch.from_numpy(to_network(generate_sequence(7, 3)[:, :48, :48], spec))[None]
    with torch.no_grad():
        full = model(x).numpy()
    assert np.array_equal(forecast(model, x, ()), full)
    # both learned parts off: plain extrapolation of the latest frame along the in-graph flow
    with torch.no_grad():
        plain = torch.cat(extrapolate(x[:, -1:], lucas_kanade(x), 10), dim=1).numpy()
    np.testing.assert_allclose(forecast(model, x, ("motion", "evolution")), plain, atol=1e-6)
    assert not np.allclose(forecast(model, x, ("evolution",)), full, atol=1e-4)  # the evolution trained
    with torch.no_grad():
        assert np.array_equal(model(x).numpy(), full)  # switched back on afterwards
    result = ablation(model_dir, n=1, size=48, leads=(1, 10))
    assert set(result) >= {"base", "fast", "stratiform"}
    rows = result["base"]
    assert set(rows) == {"pysteps LK extrapolation", *PARTS} and all(len(v) == 2 for v in rows.values())
    assert "| base | in-graph extrapolation |" in table(result, (1, 10))


def test_recalibrating_a_committed_nowcaster_keeps_its_network_and_re_measures(
    tmp_path, tiny_committed, few_calibration_sequences
) -> None:
    """``nowcast-calibrate``: the committed graph's weights, a rain decision value chosen on validation, the
    verification again, and an export whose card make eval re-measures; the network's outputs are unchanged."""
    import onnxruntime as ort

    from modelrepo.repository import check_model_dir
    from training.eval_repo import evaluate_entry
    from training.nowcast_calibrate import MARGINS_DBZ, recalibrate

    assert check_model_dir(tiny_committed).card.radar.rain_decision_dbz is None
    r = recalibrate(tiny_committed, tmp_path / "runs", export_to=tmp_path / "models2")
    entry = check_model_dir(tmp_path / "models2" / "lagrangian_cal")
    assert entry.ok, entry.problems
    assert entry.card.radar.rain_decision_dbz == r["rain_decision_dbz"]
    assert entry.card.radar.rain_threshold - r["rain_decision_dbz"] in MARGINS_DBZ
    x = to_network(generate_sequence(3, 3)[:, :48, :48], entry.card.radar)[None]
    before, after = (
        ort.InferenceSession(str(d / "lagrangian_cal" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        for d in (tiny_committed.parent, tmp_path / "models2")
    )
    np.testing.assert_allclose(after.run(None, {"input": x})[0], before.run(None, {"input": x})[0], atol=1e-5)
    result = evaluate_entry(entry)
    assert result.ok, result.message


def test_the_in_graph_flow_uses_the_models_window_and_regularisation() -> None:
    x = torch.from_numpy(to_network(generate_sequence(5, 3)[:, :48, :48], SPEC))[None]
    default = LagrangianNowcaster(base=4, depth=2).eval()  # its motion head starts at zero: the flow alone
    assert default.config["flow_reg"] == 1e-5 and default.config["flow_window"] == 8.0  # what older cards mean
    assert default.config["flow_conf_power"] == 1.0
    cfg = NowcastConfig(arch="lagrangian", base=4, depth=2, rollout=1, rollout_start=1, flow_reg=1e-3, flow_window=12.0)
    tuned = build_nowcaster(cfg, SPEC).eval()
    sharp = build_nowcaster(dataclasses.replace(cfg, flow_conf_power=2.0), SPEC).eval()
    with torch.no_grad():
        torch.testing.assert_close(default.displacement(x), lucas_kanade(x))
        torch.testing.assert_close(tuned.displacement(x), lucas_kanade(x, window=12.0, reg=1e-3))
        assert not torch.allclose(tuned.displacement(x), default.displacement(x), atol=1e-3)
        torch.testing.assert_close(sharp.displacement(x), lucas_kanade(x, window=12.0, reg=1e-3, conf_power=2.0))
        assert not torch.allclose(sharp.displacement(x), tuned.displacement(x), atol=1e-3)


def test_serve_as_scales_the_evolution_and_sets_the_flow_smoothing() -> None:
    from training.nowcast_ablation import forecast

    torch.manual_seed(0)
    model = LagrangianNowcaster(base=4, depth=2, flow_smooth=8.0).eval()
    torch.nn.init.normal_(model.evolution.outc.conv.weight, std=0.1)  # a trained-looking evolution
    x = torch.from_numpy(to_network(generate_sequence(5, 3)[:, :48, :48], SPEC))[None]
    with torch.no_grad():
        full = model(x)
        without = forecast(model, x, ("evolution",))  # no evolution: extrapolation along the motion
        model.serve_as(8.0, 1.0)
        assert torch.equal(model(x), full)
        model.serve_as(16.0, 0.0)
        assert model.config["flow_smooth"] == model.flow_smooth == 16.0
        moved = forecast(model, x, ())
    model.serve_as(8.0)
    np.testing.assert_allclose(forecast(model, x, ()), without, atol=1e-6)  # gain 0 stays 0
    assert not np.allclose(moved, without, atol=1e-4)  # the smoothing changed the flow


def test_calibrating_a_lagrangian_models_evolution_chooses_the_validation_best_setting_and_exports_it(
    tmp_path, tiny_committed, monkeypatch
) -> None:
    """``nowcast-calibrate --evolution``: every flow smoothing x evolution gain scored on validation with every
    rain decision margin; the best one is applied to the network, written in the card and served by the export."""
    import onnxruntime as ort

    import training.nowcast_calibrate as cal
    from modelrepo.repository import check_model_dir
    from training.eval_repo import evaluate_entry
    from training.nowcast_ablation import load_lagrangian
    from training.tasks.nowcast import config_from_card

    monkeypatch.setattr(cal, "N_VALIDATION_EVOLUTION", 3)
    monkeypatch.setattr(cal, "FLOW_SMOOTHS_PX", (12.0, 16.0))  # none of the settings is the trained one (8, 1),
    monkeypatch.setattr(cal, "EVOLUTION_GAINS", (0.5,))  # so the export must differ from the committed graph
    trained, _ = load_lagrangian(tiny_committed)
    r = cal.recalibrate(tiny_committed, tmp_path / "runs", tmp_path / "models2", evolution=True)
    served = r["verification"]["served_settings"]
    assert len(served["rows"]) == 2 and served["trained"] == {"flow_smooth": 8.0, "evolution_gain": 1.0}
    best = min(served["rows"], key=lambda row: row["mae"])
    assert served["chosen"] == {"flow_smooth": best["flow_smooth"], "evolution_gain": best["evolution_gain"]}
    assert r["verification"]["rain_decision"]["chosen_margin_dbz"] == best["margin_dbz"]
    assert "(chosen)" in (tmp_path / "runs/lagrangian_cal_calibrated/served_settings.md").read_text()
    entry = check_model_dir(tmp_path / "models2" / "lagrangian_cal")
    assert entry.ok, entry.problems
    assert config_from_card(entry.card).flow_smooth == entry.card.architecture.kwargs["flow_smooth"]
    assert entry.card.architecture.kwargs["flow_smooth"] == best["flow_smooth"]
    assert entry.card.verification["served_settings"]["chosen"] == served["chosen"]
    x = to_network(generate_sequence(3, 3)[:, :48, :48], entry.card.radar)[None]
    with torch.no_grad():
        before = trained(torch.from_numpy(x)).numpy()
        trained.serve_as(**served["chosen"])  # the export serves exactly the chosen setting
        expect = trained(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(str(entry.version_path()), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, expect, atol=1e-4)
    assert not np.allclose(got, before, atol=1e-3)  # and that is not the committed network
    result = evaluate_entry(entry)
    assert result.ok, result.message
