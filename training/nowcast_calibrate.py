"""Where a nowcaster's forecast turns from no rain to rain, chosen on validation sequences.

The data never holds a value between no rain and the rain threshold (10 dBZ), but a network's forecast
does: at a rain edge it hedges, and a value just below the threshold is served as no rain - a miss of
the whole threshold height, where the truth is usually rain at the threshold. Measured on the committed
Lagrangian model (2026-12-05): at 6 minutes such misses were 1.5 x extrapolation's count in ``fast`` and
1.6 x in ``growth_decay``, and they were all of its deficit against extrapolation there.

So the decision value is a calibration, like a classifier's threshold: forecasts at or above
``rain_threshold - margin`` are served as rain (at least the threshold), lower ones as no rain
(``RadarSpec.rain_decision_dbz``, applied by ``modelrepo.radar.from_network`` everywhere a forecast is
served or verified). The margin is the one with the lowest MAE over the validation sequences of every
regime the model was trained on and every lead (seeds from ``VAL_SEED0``, never the test or regime test
seeds); the network itself is unchanged.

A Lagrangian model can also have, chosen together with the margin on the same sequences
(``--calibrate-evolution``; ``nowcast-calibrate --evolution``), the in-graph flow's final smoothing and a
factor on its evolution network's changes (its output layer scaled: the same graph). The evolution
network is what beats extrapolation at the longer leads and what costs it the 6-minute MAE; on the
committed model's validation sequences a fraction of its changes did better at every lead than all of
them - shrinking a learned correction toward the extrapolation it corrects - but not on the held-out
sequences (README, 2026-12-06), so that model was not recalibrated this way.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from modelrepo.card import RadarSpec
from modelrepo.radar import from_network, to_network
from modelrepo.repository import check_model_dir
from training.nets.lagrangian import LagrangianNowcaster
from training.nets.nowcaster import rollout
from training.tasks.nowcast import VAL_SEED0, NowcastConfig, generated, regimes, validation_regime, verify_all
from training.tasks.nowcast_verify import lead_mae

MARGINS_DBZ = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
# Lagrangian models (``--calibrate-evolution``): the in-graph flow's final smoothing (px) and a factor on the
# evolution network's changes, chosen with the margin. On the committed model (2026-12-06) validation chose 16 px
# and 0.7, and the held-out sets were worse at every lead with them (README): it keeps its trained settings.
FLOW_SMOOTHS_PX = (8.0, 12.0, 16.0, 24.0)
EVOLUTION_GAINS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
N_VALIDATION = 8  # validation sequences per regime (as the committed model's rain decision was chosen)
N_VALIDATION_EVOLUTION = 16  # with the evolution settings: 24 of them, so twice the sequences


@torch.no_grad()
def _network_forecasts(model: torch.nn.Module, obs: np.ndarray, spec: RadarSpec, steps: int) -> np.ndarray:
    model.eval()
    x = torch.from_numpy(np.stack([to_network(o, spec) for o in obs]))
    return rollout(model.cpu(), x, steps).numpy()


def _settings(model: torch.nn.Module, cfg: NowcastConfig) -> list[dict]:
    if cfg.calibrate_evolution and isinstance(model, LagrangianNowcaster):
        return [{"flow_smooth": s, "evolution_gain": g} for s in FLOW_SMOOTHS_PX for g in EVOLUTION_GAINS]
    return [{}]  # the model as it is


def _served_as(model: torch.nn.Module, setting: dict) -> torch.nn.Module:
    if not setting:
        return model
    copy = deepcopy(model)
    copy.serve_as(**setting)
    return copy


def served_scores(
    model: torch.nn.Module,
    cfg: NowcastConfig,
    spec: RadarSpec,
    margins: tuple[float, ...] = MARGINS_DBZ,
    n: int | None = None,
    size: int = 128,
) -> dict:
    """{"settings", "margins_dbz", "regimes", "mae": per setting, per margin the MAE per regime (averaged over
    leads)} on validation sequences, on the pixels extrapolation reaches (as the verification scores them).
    The settings: the model as it is, or (``cfg.calibrate_evolution``, Lagrangian) every flow smoothing x
    evolution gain."""
    settings = _settings(model, cfg)
    steps, n = spec.max_steps, n or (N_VALIDATION_EVOLUTION if len(settings) > 1 else N_VALIDATION)
    names = regimes(cfg.train_regimes) if cfg.data == "generated" else ["base"]
    mae: list[list[list[float]]] = [[[] for _ in margins] for _ in settings]
    for regime in names:
        obs, truth, lk = validation_regime(regime, spec, n, size, "calibration")
        ok = np.isfinite(lk)
        for rows, setting in zip(mae, settings):
            y = _network_forecasts(_served_as(model, setting), obs, spec, steps)
            for row, m in zip(rows, margins):
                f = from_network(y, spec.model_copy(update={"rain_decision_dbz": spec.rain_threshold - m}))
                row.append(round(float(np.mean(lead_mae(f, truth, ok, range(1, steps + 1)))), 4))
    seeds = f"{VAL_SEED0} + 97 k, k < {n}"
    return {"settings": settings, "margins_dbz": list(margins), "regimes": names, "mae": mae, "seeds": seeds}


def calibrated(model: torch.nn.Module, cfg: NowcastConfig, spec: RadarSpec) -> tuple[RadarSpec, dict]:
    """``spec`` with the validation-best rain decision value, and the scores it was chosen by
    ({"rain_decision"}, and with ``cfg.calibrate_evolution`` {"served_settings"}: the setting chosen with it is
    applied to ``model`` and ``cfg.flow_smooth``). Ties: the earlier setting / smaller margin (listed first)."""
    scores = served_scores(model, cfg, spec, size=cfg.test_size)
    best = [min(range(len(scores["margins_dbz"])), key=lambda j: np.mean(rows[j])) for rows in scores["mae"]]
    means = [float(np.mean(rows[j])) for rows, j in zip(scores["mae"], best)]
    i = int(np.argmin(means))
    margins = scores["margins_dbz"]
    rain = {"margins_dbz": margins, "regimes": scores["regimes"], "mae": scores["mae"][i], "seeds": scores["seeds"]}
    rain["chosen_margin_dbz"] = margins[best[i]]
    out = {"rain_decision": rain}
    if scores["settings"][i]:
        trained = {"flow_smooth": model.flow_smooth, "evolution_gain": 1.0}
        model.serve_as(**scores["settings"][i])
        cfg.flow_smooth = model.flow_smooth
        rows = [s | {"margin_dbz": margins[j], "mae": round(v, 4)} for s, j, v in zip(scores["settings"], best, means)]
        out["served_settings"] = {"trained": trained, "chosen": scores["settings"][i], "rows": rows}
    return spec.model_copy(update={"rain_decision_dbz": spec.rain_threshold - rain["chosen_margin_dbz"]}), out


def table(scores: dict) -> str:
    """Markdown: validation MAE (dBZ, mean over leads) per margin and regime."""
    names = scores["regimes"]
    lines = [
        "| served as rain from (dBZ below the threshold) | " + " | ".join(names) + " | mean |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for m, row in zip(scores["margins_dbz"], scores["mae"]):
        mark = " (chosen)" if m == scores.get("chosen_margin_dbz") else ""
        lines.append(f"| {m:g}{mark} | " + " | ".join(f"{v:.3f}" for v in row) + f" | {np.mean(row):.3f} |")
    return "\n".join(lines)


def settings_table(served: dict) -> str:
    """Markdown: validation MAE (dBZ, mean over regimes and leads) per flow smoothing and evolution gain, each
    at its best rain decision margin."""
    lines = ["| flow smoothing (px) | evolution gain | margin (dBZ) | MAE |", "|---|---|---|---|"]
    for r in served["rows"]:
        mark = " (chosen)" if all(r[k] == v for k, v in served["chosen"].items()) else ""
        lines.append(f"| {r['flow_smooth']:g} | {r['evolution_gain']:g}{mark} | {r['margin_dbz']:g} | {r['mae']:.3f} |")
    return "\n".join(lines)


def calibrate_and_verify(
    cfg: NowcastConfig, model: torch.nn.Module, spec: RadarSpec, test: np.ndarray, device, out_dir: Path
) -> tuple[RadarSpec, dict, dict]:
    """With ``cfg.calibrate_rain``, the rain decision value chosen on validation (its table in
    ``out_dir/rain_decision.md`` and the verification's ``rain_decision``) - with ``cfg.calibrate_evolution``
    together with the Lagrangian model's flow smoothing and evolution gain, applied to ``model`` and ``cfg``
    (``served_settings``; table in ``out_dir/served_settings.md``); then ``verify_all``."""
    calibration = {}
    if cfg.calibrate_rain:
        spec, calibration = calibrated(model, cfg, spec)
        (out_dir / "rain_decision.md").write_text(table(calibration["rain_decision"]) + "\n")
        if "served_settings" in calibration:
            (out_dir / "served_settings.md").write_text(settings_table(calibration["served_settings"]) + "\n")
        model.to(device)
    verification, forecasts = verify_all(cfg, model, spec, test, device)
    verification.update(calibration)
    return spec, verification, forecasts


def recalibrate(
    model_dir: Path,
    out: Path,
    export_to: Path | None = None,
    version: int | None = None,
    overwrite: bool = False,
    evolution: bool = False,
) -> dict:
    """A committed nowcaster (its card's config, the ONNX graph's weights) with its rain decision value chosen
    again on validation - with ``evolution`` (Lagrangian) together with its flow smoothing and evolution gain -
    verified again like a training run (reports in ``out/<name>_calibrated``), and optionally exported with the
    new card. Without ``evolution`` the network is unchanged; so is everything its card says of it."""
    from training.tasks.nowcast import LEADS, TEST_SEED0, build_nowcaster, config_from_card
    from training.tasks.nowcast_export import export_nowcaster
    from training.tasks.nowcast_verify import write_reports
    from training.warmstart import load_onnx_weights

    entry = check_model_dir(Path(model_dir))
    if not entry.ok or entry.card is None or entry.card.radar is None:
        raise ValueError(f"{model_dir} is not a nowcaster's model folder: {'; '.join(entry.problems)}")
    cfg = replace(config_from_card(entry.card), calibrate_rain=True, calibrate_evolution=evolution)
    spec = entry.card.radar.model_copy(update={"rain_decision_dbz": None})
    model = build_nowcaster(cfg, spec)
    load_onnx_weights(model, Path(model_dir))
    model.eval()
    test = generated(
        range(TEST_SEED0, TEST_SEED0 + cfg.n_test), spec.frames_in + LEADS, cfg.test_size, cfg.workers, "test"
    )
    out_dir = Path(out) / f"{cfg.name}_calibrated"
    out_dir.mkdir(parents=True, exist_ok=True)
    spec, verification, forecasts = calibrate_and_verify(cfg, model, spec, test, torch.device("cpu"), out_dir)
    earlier = (entry.card.verification or {}).get("served_settings")
    if earlier:  # the weights carry an earlier evolution gain: the card keeps saying so
        if "served_settings" in verification:
            verification["served_settings"]["earlier"] = earlier
        else:
            verification["served_settings"] = earlier
    write_reports(verification, forecasts, [], test, spec, out_dir)
    result = {"rain_decision_dbz": spec.rain_decision_dbz, "out_dir": str(out_dir), "verification": verification}
    if export_to is not None:
        result["exported"] = str(export_nowcaster(model, cfg, spec, verification, test, export_to, version, overwrite))
    return result
