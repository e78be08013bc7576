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

from modelrepo.card import RadarSpec
from modelrepo.radar import from_network, to_network
from modelrepo.repository import check_model_dir
from training.data.radar import REGIMES
from training.tasks.nowcast import build_nowcaster, config_from_card, validation_regime
from training.tasks.nowcast_verify import lead_mae
from training.warmstart import load_onnx_weights

PARTS = {"model": (), "no motion correction": ("motion",), "no evolution": ("evolution",)}
PARTS["in-graph extrapolation"] = ("motion", "evolution")


def load_lagrangian(model_dir: Path) -> tuple[torch.nn.Module, RadarSpec]:
    """The committed model rebuilt from its card's config (``build_nowcaster``) with the ONNX graph's
    weights, and its radar spec."""
    entry = check_model_dir(Path(model_dir))
    if not entry.ok or entry.card is None or entry.card.radar is None:
        raise ValueError(f"{model_dir} is not a nowcaster's model folder: {'; '.join(entry.problems)}")
    cfg = config_from_card(entry.card)
    if cfg.arch != "lagrangian":
        raise ValueError(f"{model_dir} is a {cfg.arch} nowcaster; the ablation switches a Lagrangian one's parts off")
    model = build_nowcaster(cfg, entry.card.radar)
    load_onnx_weights(model, model_dir)
    return model.eval(), entry.card.radar


@torch.no_grad()
def forecast(model: torch.nn.Module, x: torch.Tensor, off: tuple[str, ...]) -> np.ndarray:
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
    model, spec = load_lagrangian(model_dir)
    out = {}
    for regime in REGIMES:
        obs, truth, lk = validation_regime(regime, spec, n, size)
        ok = np.isfinite(lk)
        x = torch.from_numpy(np.stack([to_network(o, spec) for o in obs]))
        rows = {"pysteps LK extrapolation": _mae(lk, truth, ok, leads)}
        for row, off in PARTS.items():
            rows[row] = _mae(np.stack([from_network(f, spec) for f in forecast(model, x, off)]), truth, ok, leads)
        out[regime] = rows
    return out


def _mae(f: np.ndarray, truth: np.ndarray, ok: np.ndarray, leads: tuple[int, ...]) -> list[float]:
    return [round(v, 3) for v in lead_mae(f, truth, ok, leads)]


def table(result: dict, leads: tuple[int, ...], minutes: float = 6.0) -> str:
    head = " | ".join(f"MAE {int(k * minutes)} min" for k in leads)
    lines = [f"| regime | forecast | {head} |", "|---|---|" + "---|" * len(leads)]
    for regime, rows in result.items():
        lines += [f"| {regime} | {row} | " + " | ".join(f"{v:.3f}" for v in vals) + " |" for row, vals in rows.items()]
    return "\n".join(lines)
