"""Where a Lagrangian nowcaster's skill comes from, regime by regime (``python -m training nowcast-ablation``).

On validation sequences of every weather regime (seeds from ``VAL_SEED0``: never the test or the
regime test seeds), the MAE (dBZ) at chosen leads of pysteps' Lucas-Kanade extrapolation, of the model,
and of the model with its learned parts switched off: the motion correction, the evolution, both (which
is plain extrapolation along the in-graph flow). Every row on the pixels LK extrapolation reaches. The
model is a committed model folder (its weights read from the ONNX graph, ``training.warmstart``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from modelrepo.radar import from_network, to_network
from training.data.radar import REGIMES, generate_sequence, regime_params
from training.nets.lagrangian import LagrangianNowcaster
from training.tasks.nowcast import VAL_SEED0, NowcastConfig, radar_spec
from training.tasks.nowcast_verify import forecast_lk
from training.warmstart import _entry, load_onnx_weights

PARTS = {"model": (), "no motion correction": ("motion",), "no evolution": ("evolution",)}
PARTS["in-graph extrapolation"] = ("motion", "evolution")


def load_lagrangian(model_dir: Path) -> LagrangianNowcaster:
    entry = _entry(model_dir)
    if entry is None or entry.card.architecture.name != "nowcaster_lagrangian":
        raise ValueError(f"{model_dir} is not a Lagrangian nowcaster's model folder")
    kwargs = {k: v for k, v in entry.card.architecture.kwargs.items() if k != "advection"}
    model = LagrangianNowcaster(**kwargs)
    load_onnx_weights(model, model_dir)
    return model.eval()


@torch.no_grad()
def _forecast(model: LagrangianNowcaster, x: torch.Tensor, off: tuple[str, ...]) -> np.ndarray:
    """The model's forecast with the named sub-networks answering zeros (their heads' untrained state)."""
    saved = {name: getattr(model, name).forward for name in off}
    try:
        for name, fwd in saved.items():
            getattr(model, name).forward = lambda z, fwd=fwd: torch.zeros_like(fwd(z))
        return model(x).numpy()
    finally:
        for name in saved:
            del getattr(model, name).forward  # back to the class's forward


def ablation(model_dir: Path, n: int = 8, size: int = 128, leads: tuple[int, ...] = (1, 5, 10)) -> dict:
    """{regime: {row: [MAE at each lead]}} (leads in steps of the radar spec)."""
    model = load_lagrangian(model_dir)
    spec = radar_spec(NowcastConfig(arch="lagrangian"))
    steps = model.frames_out
    out = {}
    for regime in REGIMES:
        params = regime_params(regime, size)
        seqs = np.stack([generate_sequence(VAL_SEED0 + 97 * i, 3 + steps, params) for i in range(n)])
        obs, truth = seqs[:, :3], seqs[:, 3:]
        lk = forecast_lk(obs, steps, spec)
        x = torch.from_numpy(np.stack([to_network(o, spec) for o in obs]))
        rows = {"pysteps LK extrapolation": _mae(lk, truth, np.isfinite(lk), leads)}
        for row, off in PARTS.items():
            f = np.stack([from_network(a, spec) for a in _forecast(model, x, off)])
            rows[row] = _mae(f, truth, np.isfinite(lk), leads)
        out[regime] = rows
    return out


def _mae(f: np.ndarray, truth: np.ndarray, ok: np.ndarray, leads: tuple[int, ...]) -> list[float]:
    """MAE at each lead (1-based steps) over the pixels ``ok``; NaN where LK reaches no pixel at all."""
    err = np.abs(f - truth)
    return [round(float(err[:, k - 1][ok[:, k - 1]].mean()), 3) if ok[:, k - 1].any() else float("nan") for k in leads]


def table(result: dict, leads: tuple[int, ...], minutes: float = 6.0) -> str:
    head = " | ".join(f"MAE {int(k * minutes)} min" for k in leads)
    lines = [f"| regime | forecast | {head} |", "|---|---|" + "---|" * len(leads)]
    for regime, rows in result.items():
        lines += [f"| {regime} | {row} | " + " | ".join(f"{v:.3f}" for v in vals) + " |" for row, vals in rows.items()]
    return "\n".join(lines)
