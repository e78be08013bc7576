"""Can a nowcaster take frames at another spacing than it was trained on (``python -m training nowcast-timesteps``)?

Most radars scan every 5 minutes; the models train on 6-minute steps. A Lagrangian nowcaster measures
motion from its own input frames, so it may forecast in the frames' own step. This checks it on
generated sequences drawn at other steps - the generator's per-step motion and growth scaled to the step,
so the weather is the same per minute - against pysteps' Lucas-Kanade extrapolation and persistence on
the same frames (seeds from 800,000: never training, validation or test). A step is accepted when, in
every regime tried and at every lead shown, the model stands to LK as it does at the trained step (its MAE
ratio to LK's at most ``MARGIN`` above that, or above 1) and beats persistence; the card's
``radar.timestep_range_minutes`` is the contiguous run of accepted steps around the trained one
(``--write-card``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from modelrepo.card import ModelCard
from modelrepo.radar import from_network, to_network
from modelrepo.repository import CARD_FILE
from training.data.radar import RadarParams, generate_sequence, regime_params
from training.nowcast_ablation import load_lagrangian
from training.tasks.nowcast_verify import forecast_lk, lead_mae

PER_STEP = ("speed_px", "rotation_rad", "deformation", "swirl_px", "motion_drift", "growth_dbz")
STEPS = (4.0, 5.0, 6.0, 8.0, 10.0)
REGIMES = ("base", "fast", "stratiform", "convective")
LEADS = (1, 2, 5, 10)
MARGIN = 0.05  # the model's MAE / LK's at a lead may exceed its value at the trained step (or 1) by this much
SEED0 = 800_000


def at_step(p: RadarParams, minutes: float) -> RadarParams:
    """The same weather drawn every ``minutes``: per-step motion and growth scaled by the step ratio."""
    k = minutes / p.timestep_minutes
    scaled = {f: tuple(v * k for v in getattr(p, f)) if isinstance(getattr(p, f), tuple) else getattr(p, f) * k
              for f in PER_STEP}  # fmt: skip
    return replace(p, timestep_minutes=minutes, **scaled)


@torch.no_grad()
def measure(model_dir: Path, n: int = 12, size: int = 128) -> dict:
    """{step: {regime: {method: MAE at LEADS}}} for the model, LK and persistence."""
    model, spec = load_lagrangian(model_dir)
    out: dict = {}
    for minutes in STEPS:
        for regime in REGIMES:
            p = at_step(regime_params(regime, size), minutes)
            seqs = np.stack([generate_sequence(SEED0 + 31 * i, spec.frames_in + spec.max_steps, p) for i in range(n)])
            obs, truth = seqs[:, : spec.frames_in], seqs[:, spec.frames_in :]
            lk = forecast_lk(obs, spec.max_steps, spec)
            ok = np.isfinite(lk)
            x = torch.from_numpy(np.stack([to_network(o, spec) for o in obs]))
            fc = np.stack([from_network(y, spec) for y in model(x).numpy()])
            persistence = np.repeat(obs[:, -1:], spec.max_steps, axis=1)
            rows = {"model": fc, "pysteps LK": lk, "persistence": persistence}
            out.setdefault(minutes, {})[regime] = {k: lead_mae(v, truth, ok, LEADS) for k, v in rows.items()}
    return out


def _ratios(regimes: dict) -> dict[str, list[float]]:
    return {name: [m / lk for m, lk in zip(r["model"], r["pysteps LK"])] for name, r in regimes.items()}


def accepted(scores: dict, trained: float) -> list[float]:
    """Steps at which, in every regime and at every lead, the model's MAE relative to LK's is no more than
    ``MARGIN`` above what it is at the trained step, and the model beats persistence."""
    base = _ratios(scores[trained])

    def ok(regimes: dict) -> bool:
        ratios = _ratios(regimes)
        return all(
            q <= max(q0, 1.0) + MARGIN and r["model"][i] < r["persistence"][i]
            for name, r in regimes.items()
            for i, (q, q0) in enumerate(zip(ratios[name], base[name]))
        )

    return [step for step, regimes in scores.items() if ok(regimes)]


def step_range(scores: dict, trained: float) -> tuple[float, float] | None:
    """The contiguous run of accepted steps around ``trained``."""
    good = set(accepted(scores, trained))
    steps = sorted(scores)
    if trained not in good:  # beaten by persistence at its own step: nothing to extend
        return None
    i = j = steps.index(trained)
    while i > 0 and steps[i - 1] in good:
        i -= 1
    while j < len(steps) - 1 and steps[j + 1] in good:
        j += 1
    return steps[i], steps[j]


def table(scores: dict) -> str:
    head = " / ".join(str(k) for k in LEADS)
    lines = [f"| step (min) | regime | forecast | MAE (dBZ) at {head} steps |", "|---|---|---|---|"]
    for step, regimes in scores.items():
        for regime, rows in regimes.items():
            for name, vals in rows.items():
                lines.append(f"| {step:g} | {regime} | {name} | " + " / ".join(f"{v:.2f}" for v in vals) + " |")
    return "\n".join(lines)


def write_card(model_dir: Path, scores: dict) -> tuple[float, float] | None:
    """The accepted range (and the table's numbers) into the card."""
    path = Path(model_dir) / CARD_FILE
    card = ModelCard.load(path)
    assert card.radar is not None
    rng = step_range(scores, card.radar.timestep_minutes)
    radar = card.radar.model_copy(update={"timestep_range_minutes": rng})
    verification = dict(card.verification or {}) | {
        "timesteps": {
            "leads_steps": list(LEADS),
            "seeds": f"{SEED0} + 31 i",
            "mae_dbz": {f"{k:g}": v for k, v in scores.items()},
        }
    }
    card.model_copy(update={"radar": radar, "verification": verification}).dump(path)
    return rng
