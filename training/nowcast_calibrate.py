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
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from modelrepo.card import RadarSpec
from modelrepo.radar import from_network, to_network
from modelrepo.repository import check_model_dir
from training.nets.nowcaster import rollout
from training.tasks.nowcast import VAL_SEED0, NowcastConfig, generated, regimes, validation_regime
from training.tasks.nowcast_verify import lead_mae

MARGINS_DBZ = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


@torch.no_grad()
def _network_forecasts(model: torch.nn.Module, obs: np.ndarray, spec: RadarSpec, steps: int) -> np.ndarray:
    model.eval()
    x = torch.from_numpy(np.stack([to_network(o, spec) for o in obs]))
    return rollout(model.cpu(), x, steps).numpy()


def margin_scores(
    model: torch.nn.Module,
    cfg: NowcastConfig,
    spec: RadarSpec,
    margins: tuple[float, ...] = MARGINS_DBZ,
    n: int = 8,
    size: int = 128,
) -> dict:
    """{"margins_dbz", "regimes", "mae": per margin the MAE per regime (averaged over leads)} on validation
    sequences, on the pixels extrapolation reaches (as the verification scores them)."""
    steps = spec.max_steps
    names = regimes(cfg.train_regimes) if cfg.data == "generated" else ["base"]
    mae: list[list[float]] = [[] for _ in margins]
    for regime in names:
        obs, truth, lk = validation_regime(regime, spec, n, size, "calibration")
        ok = np.isfinite(lk)
        y = _network_forecasts(model, obs, spec, steps)
        for row, m in zip(mae, margins):
            f = from_network(y, spec.model_copy(update={"rain_decision_dbz": spec.rain_threshold - m}))
            row.append(round(float(np.mean(lead_mae(f, truth, ok, range(1, steps + 1)))), 4))
    return {"margins_dbz": list(margins), "regimes": names, "mae": mae, "seeds": f"{VAL_SEED0} + 97 k, k < {n}"}


def calibrated(model: torch.nn.Module, cfg: NowcastConfig, spec: RadarSpec) -> tuple[RadarSpec, dict]:
    """``spec`` with the validation-best rain decision value, and the scores it was chosen by."""
    scores = margin_scores(model, cfg, spec, size=cfg.test_size)
    means = [float(np.mean(row)) for row in scores["mae"]]
    best = scores["margins_dbz"][int(np.argmin(means))]  # ties: the smaller margin (listed first)
    scores["chosen_margin_dbz"] = best
    return spec.model_copy(update={"rain_decision_dbz": spec.rain_threshold - best}), scores


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


def recalibrate(
    model_dir: Path, out: Path, export_to: Path | None = None, version: int | None = None, overwrite: bool = False
) -> dict:
    """A committed nowcaster (its card's config, the ONNX graph's weights) with its rain decision value chosen
    again on validation, verified again like a training run (reports in ``out/<name>_calibrated``), and
    optionally exported with the new card. The network is unchanged; so is everything its card says of it."""
    from training.tasks.nowcast import LEADS, TEST_SEED0, build_nowcaster, calibrate_and_verify, config_from_card
    from training.tasks.nowcast_export import export_nowcaster
    from training.tasks.nowcast_verify import write_reports
    from training.warmstart import load_onnx_weights

    entry = check_model_dir(Path(model_dir))
    if not entry.ok or entry.card is None or entry.card.radar is None:
        raise ValueError(f"{model_dir} is not a nowcaster's model folder: {'; '.join(entry.problems)}")
    cfg = replace(config_from_card(entry.card), calibrate_rain=True)
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
    write_reports(verification, forecasts, [], test, spec, out_dir)
    result = {"rain_decision_dbz": spec.rain_decision_dbz, "out_dir": str(out_dir), "verification": verification}
    if export_to is not None:
        result["exported"] = str(export_nowcaster(model, cfg, spec, verification, test, export_to, version, overwrite))
    return result
