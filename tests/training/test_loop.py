"""The shared training loop: an interrupted run resumed from its checkpoint ends where an
uninterrupted one does; a changed configuration is refused; EMA and early stopping work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from training.loop import LoopConfig, fit, warmup_cosine

X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] + X[:, 1] > 0).long()


def _model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))


def _batches(epoch: int, rng: np.random.Generator):
    perm = torch.from_numpy(rng.permutation(64))
    for i in range(4):
        idx = perm[i * 16 : (i + 1) * 16]
        yield X[idx], Y[idx]


def _validate(m: nn.Module) -> tuple[float, float]:
    m.eval()
    with torch.no_grad():
        out = m(X)
    return (out.argmax(1) == Y).float().mean().item(), F.cross_entropy(out, Y).item()


def _fit(out: Path, cfg: LoopConfig, **kw):
    model = _model()
    r = fit(
        model, cfg, 4, _batches, lambda m, x, y: F.cross_entropy(m(x), y), _validate, out, {}, {"task": 1},
        progress=False, **kw,
    )  # fmt: skip
    return model, r


@pytest.mark.parametrize("schedule", ["onecycle", "warmup_cosine"])
def test_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path: Path, schedule: str) -> None:
    cfg = LoopConfig(epochs=6, lr=5e-2, patience=100, ema=0.9, save_every_s=0, schedule=schedule, warmup_steps=3)
    straight, r1 = _fit(tmp_path / "a", cfg)
    _, part = _fit(tmp_path / "b", cfg, stop_after=3)
    assert part.epochs_run == 3
    resumed, r2 = _fit(tmp_path / "b", cfg, resume=True)
    assert r2.resumed_from_epoch == 3 and r2.epochs_run == 6
    assert [h["train_loss"] for h in r1.history] == pytest.approx([h["train_loss"] for h in r2.history])
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert r1.best_score > 0.8


def test_warmup_cosine_rises_then_falls_to_zero_at_the_last_planned_step() -> None:
    factors = [warmup_cosine(4, 24, step) for step in range(30)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[14] == pytest.approx(0.5)  # half-way between the warm-up's end (4) and the last step (24)
    assert all(a > b for a, b in zip(factors[4:24], factors[5:25]))
    assert factors[24:] == pytest.approx([0.0] * 6)


def test_resume_refuses_another_configuration(tmp_path: Path) -> None:
    _fit(tmp_path, LoopConfig(epochs=2, save_every_s=0))
    with pytest.raises(ValueError, match="another configuration"):
        _fit(tmp_path, LoopConfig(epochs=3, save_every_s=0), resume=True)


def test_early_stopping_keeps_the_best_epoch(tmp_path: Path) -> None:
    scores = iter([0.5, 0.9, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6])
    model = _model()
    r = fit(
        model, LoopConfig(epochs=8, patience=2, save_every_s=0), 4, _batches,
        lambda m, x, y: F.cross_entropy(m(x), y), lambda m: (next(scores), 0.0), tmp_path, {}, {},
        progress=False,
    )  # fmt: skip
    assert r.best_epoch == 1 and r.epochs_run == 4  # epochs 2 and 3 without progress, then stop
    best = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert best["epoch"] == 1
