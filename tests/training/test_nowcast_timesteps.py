"""Which frame spacings a nowcaster is accepted at (training.nowcast_timesteps), on made-up scores."""

from __future__ import annotations

from training.data.radar import RadarParams
from training.nowcast_timesteps import accepted, at_step, step_range


def _scores(model_by_step: dict[float, list[float]], persistence: float = 9.0) -> dict:
    lk = [1.0, 2.0]
    return {
        s: {"base": {"model": m, "pysteps LK": lk, "persistence": [persistence] * 2}} for s, m in model_by_step.items()
    }


def test_a_step_is_accepted_when_the_model_stands_to_lk_as_at_its_own_step() -> None:
    scores = _scores({4.0: [1.12, 2.1], 5.0: [1.1, 2.0], 6.0: [1.1, 1.9], 8.0: [1.3, 2.0], 10.0: [1.0, 2.0]})
    assert accepted(scores, 6.0) == [4.0, 5.0, 6.0, 10.0]  # 8: 1.3 / 1.0 is more than 0.05 above 1.1
    assert step_range(scores, 6.0) == (4.0, 6.0)  # contiguous around the trained step: 10 is cut off by 8


def test_losing_to_persistence_rejects_a_step_and_the_trained_step_anchors_the_range() -> None:
    scores = _scores({5.0: [1.0, 2.0], 6.0: [1.0, 2.0]}, persistence=1.5)  # persistence wins at lead 1
    assert accepted(scores, 6.0) == [] and step_range(scores, 6.0) is None


def test_other_steps_draw_the_same_weather_per_minute() -> None:
    p = at_step(RadarParams(), 5.0)
    assert p.timestep_minutes == 5.0 and p.speed_px == (1.0 * 5 / 6, 5.0 * 5 / 6)
    assert p.growth_dbz == 0.6 * 5 / 6 and p.tau_minutes == RadarParams().tau_minutes  # minutes stay minutes
