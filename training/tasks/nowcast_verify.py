"""Nowcast baselines (persistence, pysteps Lucas-Kanade extrapolation) and verification per lead
time (MAE, CSI, FSS), tables and plots.

Boundary: an extrapolation forecast has no values where echoes would flow in from outside the
grid (pysteps returns NaN there, and its categorical scores would count those pixels as misses).
Every method is therefore verified on the same pixels: those where the Lucas-Kanade extrapolation
has a value at that lead time (per case and lead). MAE and CSI use only those pixels; for FSS the
others are set to NaN in forecast and observation alike, which pysteps' FSS treats as no event in
both, so they add neither hits nor misses.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from modelrepo.card import RadarSpec
from modelrepo.radar import colorize, from_network, to_network
from training.evaluate import save_figure
from training.nets.nowcaster import rollout

BOUNDARY = __doc__.split("Boundary: ")[1].strip().replace("\n", " ")
THRESHOLDS = (20.0, 30.0, 40.0)  # dBZ, CSI
FSS_THRESHOLD, FSS_SCALE_KM = 30.0, 8


def forecast_persistence(seqs_dbz: np.ndarray, steps: int) -> np.ndarray:
    return np.repeat(seqs_dbz[:, -1:], steps, axis=1)


def forecast_lk(seqs_dbz: np.ndarray, steps: int, spec: RadarSpec) -> np.ndarray:
    """pysteps: Lucas-Kanade motion from the last 3 frames, semi-Lagrangian extrapolation of the last.
    NaN where the extrapolation has no value (inflow from outside the grid)."""
    from pysteps import extrapolation, motion

    lk, extrap = motion.get_method("LK"), extrapolation.get_method("semilagrangian")
    out = []
    for seq in seqs_dbz:
        with warnings.catch_warnings():  # few echoes to track: pysteps' outlier test takes np.cov of
            warnings.simplefilter("ignore", RuntimeWarning)  # one or two vectors and warns; LK still answers
            velocity = lk(seq[-spec.frames_in :], verbose=False)
        f = extrap(seq[-1], velocity, steps)
        out.append(np.where(np.isnan(f), np.nan, np.where(f < spec.rain_threshold, spec.zerovalue, f)))
    return np.stack(out).astype(np.float32)


def forecast_onnx(card, onnx_path: Path, seqs_dbz: np.ndarray, steps: int) -> np.ndarray:
    """A committed nowcaster's forecast ((N, steps, H, W) dBZ from its card's last ``frames_in``
    frames), rolled out with ONNX Runtime as the service runs it: ``make eval`` re-measures a card
    with it, and ``--compare`` verifies other models beside a new one."""
    import onnxruntime as ort

    from modelrepo.radar import rollout_numpy

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        return sess.run(None, {card.input.name: x})[0]

    spec = card.radar
    obs = seqs_dbz[:, -spec.frames_in :]
    return np.stack([from_network(rollout_numpy(run, to_network(o, spec)[None], steps)[0], spec) for o in obs])


def lead_mae(f: np.ndarray, truth: np.ndarray, ok: np.ndarray, leads) -> list[float]:
    """MAE at each lead (1-based steps) over the pixels ``ok``; NaN where LK reaches no pixel at all."""
    err = np.abs(f - truth)
    return [float(err[:, k - 1][ok[:, k - 1]].mean()) if ok[:, k - 1].any() else float("nan") for k in leads]


def verify(truth: np.ndarray, forecasts: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, dict[str, list]]:
    """Scores per lead, pooled over cases. truth/forecasts (N, L, H, W) dBZ; mask (N, L, H, W) pixels verified."""
    from pysteps.verification import detcatscores, spatialscores

    scores: dict[str, dict[str, list]] = {}
    n_leads = truth.shape[1]
    for name, fc in forecasts.items():
        s: dict[str, list] = {"mae_dbz": []} | {f"csi_{t:g}dbz": [] for t in THRESHOLDS}
        s[f"fss_{FSS_THRESHOLD:g}dbz_{FSS_SCALE_KM}km"] = []
        for lead in range(n_leads):
            m = mask[:, lead]
            obs, pred = truth[:, lead], fc[:, lead]
            # no pixel verified at this lead (everything flowed out of a small grid): undefined, not 0/0
            s["mae_dbz"].append(float(np.abs(pred[m] - obs[m]).mean()) if m.any() else float("nan"))
            for t in THRESHOLDS:
                table = detcatscores.det_cat_fct_init(t)
                detcatscores.det_cat_fct_accum(table, pred[m], obs[m])
                with np.errstate(invalid="ignore", divide="ignore"):  # pysteps computes every ratio; 0/0 -> NaN
                    csi = float(detcatscores.det_cat_fct_compute(table, ["CSI"])["CSI"])
                s[f"csi_{t:g}dbz"].append(csi)  # NaN only when neither forecast nor truth has an event
            fss = spatialscores.fss_init(FSS_THRESHOLD, FSS_SCALE_KM)
            for i in range(len(obs)):
                spatialscores.fss_accum(fss, np.where(m[i], pred[i], np.nan), np.where(m[i], obs[i], np.nan))
            with np.errstate(invalid="ignore", divide="ignore"):
                s[f"fss_{FSS_THRESHOLD:g}dbz_{FSS_SCALE_KM}km"].append(float(spatialscores.fss_compute(fss)))
        # None where a score is undefined (no event in forecast or truth): JSON has no NaN
        scores[name] = {k: [round(v, 4) if np.isfinite(v) else None for v in vals] for k, vals in s.items()}
    return scores


def table(verification: dict) -> str:
    """Markdown: one row per method and score, one column per lead time."""
    leads = verification["lead_minutes"]
    lines = ["| method | score | " + " | ".join(f"{m} min" for m in leads) + " |", "|---|---|" + "---|" * len(leads)]
    for method, s in verification["methods"].items():
        for score, vals in s.items():
            lines.append(f"| {method} | {score} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in vals) + " |")
    return "\n".join(lines)


def _beats(a: float | None, b: float | None, lower_is_better: bool) -> bool:
    if a is None or b is None:  # undefined scores (no events) decide nothing in our favour
        return False
    return a < b if lower_is_better else a > b


def targets(verification: dict, model: str) -> dict[str, bool]:
    """The issue's targets: beat persistence (MAE, CSI 30 dBZ) and Lucas-Kanade extrapolation (MAE, CSI
    20 and 30 dBZ) at every lead."""
    m, leads = verification["methods"], verification["lead_minutes"]
    ours = m[model]

    def wins(other: str, score: str) -> bool:
        return all(_beats(ours[score][i], m[other][score][i], score.startswith("mae")) for i in range(len(leads)))

    res = {
        "mae_beats_persistence_all_leads": wins("persistence", "mae_dbz"),
        "csi30_beats_persistence_all_leads": wins("persistence", "csi_30dbz"),
    }
    if "extrapolation_lk" in m:
        for key, score in (("mae", "mae_dbz"), ("csi20", "csi_20dbz"), ("csi30", "csi_30dbz")):
            res[f"{key}_beats_extrapolation_all_leads"] = wins("extrapolation_lk", score)
    return res


def plot_scores(verification: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = verification["methods"]
    names = list(next(iter(methods.values())))
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4))
    for ax, score in zip(axes, names):
        for method, s in methods.items():
            ax.plot(
                verification["lead_minutes"],
                [np.nan if v is None else v for v in s[score]],
                marker="o",
                ms=3,
                label=method,
            )
        ax.set_title(score)
        ax.set_xlabel("lead time (min)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{verification['cases']} held-out sequences; {verification['boundary_short']}", fontsize=9)
    save_figure(fig, path, dpi=110)


def plot_case(
    last_obs: np.ndarray, rows: dict[str, np.ndarray], mask: np.ndarray, path: Path, step_min: float, every: int = 2
) -> None:
    """PNG strip of one case: a row per method (truth first), a column per lead (every ``every`` steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    leads = list(range(every - 1, next(iter(rows.values())).shape[0], every))
    fig, axes = plt.subplots(len(rows), len(leads) + 1, figsize=(2.1 * (len(leads) + 1), 2.2 * len(rows)))
    for r, (name, frames) in enumerate(rows.items()):
        axes[r, 0].imshow(colorize(last_obs) if r == 0 else np.ones((*last_obs.shape, 3)))
        axes[r, 0].set_ylabel(name, fontsize=9)
        for c, lead in enumerate(leads, start=1):
            shown = np.where(mask[lead], frames[lead], np.nan) if name != "truth" else frames[lead]
            axes[r, c].imshow(colorize(shown))
            if r == 0:
                axes[r, c].set_title(f"+{step_min * (lead + 1):g} min", fontsize=9)
    axes[0, 0].set_title("last observation", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    save_figure(fig, path, dpi=90)


@torch.no_grad()
def forecast_unet(model: torch.nn.Module, seqs_dbz: np.ndarray, spec: RadarSpec, steps: int, device) -> np.ndarray:
    """(N, T>=3, H, W) dBZ -> (N, steps, H, W) dBZ from the last 3 frames (H, W multiples of 2^depth)."""
    model.eval()
    out = []
    for seq in seqs_dbz:
        x = torch.from_numpy(to_network(seq[-spec.frames_in :], spec)[None]).to(device)
        out.append(from_network(rollout(model, x, steps)[0].cpu().numpy(), spec))
    return np.stack(out)


def forecast_methods(cfg, model, spec: RadarSpec, obs: np.ndarray, steps: int, device) -> tuple[dict, dict]:
    """Every method's forecast ((N, steps, H, W) dBZ) from the observed frames, and seconds per forecast."""
    t1 = time.time()
    forecasts = {cfg.name: forecast_unet(model, obs, spec, steps, device)}
    seconds = {cfg.name: round((time.time() - t1) / len(obs), 3), "extrapolation_lk": None}
    forecasts["persistence"] = forecast_persistence(obs, steps)
    for model_dir in filter(None, cfg.compare.split(",")):
        from modelrepo.repository import check_model_dir

        entry = check_model_dir(Path(model_dir))
        assert entry.ok and entry.card is not None and entry.card.radar is not None, entry.problems
        name = entry.card.name if entry.card.name != cfg.name else f"{cfg.name} (committed)"
        forecasts[name] = forecast_onnx(entry.card, entry.version_path(), obs, steps)
    if cfg.lk:
        t1 = time.time()
        forecasts["extrapolation_lk"] = forecast_lk(obs, steps, spec)
        seconds["extrapolation_lk"] = round((time.time() - t1) / len(obs), 3)
    return forecasts, seconds


def verified_pixels(forecasts: dict, truth: np.ndarray) -> np.ndarray:
    """Where every method is verified: where the LK extrapolation has a value (everywhere without it)."""
    lk = forecasts.get("extrapolation_lk")
    return np.isfinite(lk) if lk is not None else np.ones(truth.shape, bool)


def lead_minutes(spec: RadarSpec, steps: int) -> list[int]:
    return [int(spec.timestep_minutes * (i + 1)) for i in range(steps)]


def verify_methods(cfg, model, spec: RadarSpec, test: np.ndarray, device) -> tuple[dict, dict]:
    """Every method on the held-out sequences, on the same pixels (where the LK extrapolation has values)."""
    obs, truth = test[:, : spec.frames_in], test[:, spec.frames_in :]
    steps = truth.shape[1]
    forecasts, seconds = forecast_methods(cfg, model, spec, obs, steps, device)
    mask = verified_pixels(forecasts, truth)
    verification = {
        "lead_minutes": lead_minutes(spec, steps),
        "cases": len(test),
        "grid": f"{test.shape[-2]}x{test.shape[-1]} px at {spec.pixel_km:g} km",
        "boundary": BOUNDARY,
        "boundary_short": "verified where the LK extrapolation has values (inflow excluded)",
        "methods": verify(truth, forecasts, mask),
        "seconds_per_forecast": seconds,
    }
    verification["targets"] = targets(verification, cfg.name)
    return verification, forecasts | {"_mask": mask}


def verify_regimes(
    cfg, model, spec: RadarSpec, base: tuple[np.ndarray, dict], sets: dict[str, np.ndarray], device
) -> dict:
    """Scores per weather regime (``base``: the test split already forecast, as (test, forecasts)) and
    pooled over all of them, every method on the same pixels; and per regime the issue's targets."""
    test, base_fc = base
    truths, fcs = {"base": test[:, spec.frames_in :]}, {"base": {k: v for k, v in base_fc.items() if k != "_mask"}}
    for name, seqs in sets.items():
        truths[name] = seqs[:, spec.frames_in :]
        fcs[name] = forecast_methods(cfg, model, spec, seqs[:, : spec.frames_in], truths[name].shape[1], device)[0]
    leads = lead_minutes(spec, test.shape[1] - spec.frames_in)
    out: dict = {"cases": {r: len(t) for r, t in truths.items()}, "regimes": {}, "targets": {}}
    for r in truths:
        out["regimes"][r] = verify(truths[r], fcs[r], verified_pixels(fcs[r], truths[r]))
        out["targets"][r] = targets({"methods": out["regimes"][r], "lead_minutes": leads}, cfg.name)
    if all(t.shape[-2:] == test.shape[-2:] for t in truths.values()):
        truth = np.concatenate(list(truths.values()))
        pooled = {m: np.concatenate([fcs[r][m] for r in truths]) for m in fcs["base"]}
        out["pooled"] = verify(truth, pooled, verified_pixels(pooled, truth))
    return out


def regime_table(by_regime: dict, leads: list[int], at: tuple[int, ...] = (6, 30, 60)) -> str:
    """Markdown: per regime and method, MAE and CSI 30 dBZ at a few lead times."""
    cols = [m for m in at if m in leads]
    head = " | ".join(f"MAE {m}" for m in cols) + " | " + " | ".join(f"CSI30 {m}" for m in cols)
    lines = [f"| regime (cases) | method | {head} |", "|---|---|" + "---|" * (2 * len(cols))]
    rows = by_regime["regimes"] | ({"pooled": by_regime["pooled"]} if "pooled" in by_regime else {})
    n = by_regime["cases"] | {"pooled": sum(by_regime["cases"].values())}

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    for regime, methods in rows.items():
        for method, sc in methods.items():
            vals = [fmt(sc["mae_dbz"][leads.index(m)]) for m in cols] + [
                fmt(sc["csi_30dbz"][leads.index(m)]) for m in cols
            ]
            lines.append(f"| {regime} ({n[regime]}) | {method} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def plot_regimes(by_regime: dict, leads: list[int], path: Path) -> None:
    """PNG: MAE against lead time per regime (and pooled), a line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = by_regime["regimes"] | ({"pooled": by_regime["pooled"]} if "pooled" in by_regime else {})
    cols = 4
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.9 * rows), squeeze=False, sharex=True)
    for ax, (regime, methods) in zip(axes.ravel(), panels.items()):
        for method, sc in methods.items():
            ax.plot(leads, [np.nan if v is None else v for v in sc["mae_dbz"]], marker="o", ms=2, label=method)
        ax.set_title(regime, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("MAE (dBZ)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("MAE per weather regime against lead time (min); held-out sequences", fontsize=10)
    save_figure(fig, path, dpi=100)


def write_reports(verification: dict, forecasts: dict, history: list, test: np.ndarray, spec: RadarSpec, out_dir: Path):
    (out_dir / "verification.json").write_text(json.dumps(verification, indent=2) + "\n")
    md = table(verification) + "\n"
    if "by_regime" in verification:
        md += (
            "\n## Per weather regime\n\n" + regime_table(verification["by_regime"], verification["lead_minutes"]) + "\n"
        )
        plot_regimes(verification["by_regime"], verification["lead_minutes"], out_dir / "regimes.png")
    (out_dir / "verification.md").write_text(md)
    (out_dir / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    plot_scores(verification, out_dir / "scores.png")
    obs, truth = test[:, : spec.frames_in], test[:, spec.frames_in :]
    mask = forecasts["_mask"]
    case = int(np.argmax([(t >= 30).mean() for t in truth]))  # the wettest case
    rows = {"truth": truth[case]} | {k: v[case] for k, v in forecasts.items() if k != "_mask"}
    plot_case(obs[case, -1], rows, mask[case], out_dir / "case.png", spec.timestep_minutes)
