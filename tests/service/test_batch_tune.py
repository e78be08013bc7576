"""Warm-up batch tuning (service.batch_tune): which batch size a model prefers, from its timings."""

from __future__ import annotations

import os
import platform

import numpy as np
import pytest

from service.batch_tune import preferred_size, seconds_per_row, trim_heap
from tests.service.conftest import ready_client


class FakeClock:
    """A clock that a fake model advances by the seconds its batch costs: timings without timing."""

    def __init__(self, cost) -> None:
        self.t, self.cost = 0.0, cost

    def __call__(self) -> float:
        return self.t

    def run(self, x: np.ndarray) -> None:
        self.t += self.cost(len(x))


def timings(cost, max_batch: int, budget_s: float = 10.0) -> dict[int, float]:
    clock = FakeClock(cost)
    return seconds_per_row(clock.run, lambda n: np.zeros((n, 1)), max_batch, budget_s=budget_s, clock=clock)


def test_a_compute_bound_model_prefers_batch_one() -> None:
    per_row = timings(lambda n: 0.036 * n * (1 + 0.02 * n), 32)  # each row dearer in bigger batches (a CPU)
    assert sorted(per_row) == [1, 2, 4, 8, 16, 32]
    assert per_row[1] == pytest.approx(0.036 * 1.02)
    assert preferred_size(per_row, 32) == 1


def test_a_small_model_keeps_filling_to_the_maximum() -> None:
    per_row = timings(lambda n: 0.001 + 0.0001 * n, 64)  # fixed overhead per call: bigger is always cheaper
    assert preferred_size(per_row, 64) is None


def test_the_smallest_batch_as_fast_as_the_best_is_chosen() -> None:
    # per row: 1 -> 1.0, 2 -> 0.6, 4 -> 0.5, 8 -> 0.49, 16 -> 0.6: 4 is within 5 % of 8's best
    per_row_cost = {1: 1.0, 2: 0.6, 4: 0.5, 8: 0.49, 16: 0.6}
    per_row = timings(lambda n: per_row_cost[n] * n, 16, budget_s=1e9)
    assert preferred_size(per_row, 16) == 4
    assert preferred_size(per_row, 16, slack=0.0) == 8


def test_the_budget_stops_the_sweep_and_an_unfinished_sweep_changes_nothing() -> None:
    per_row = timings(lambda n: 0.1 * n, 64, budget_s=1.0)  # 3 runs of 0.1 s, 3 of 0.2 s, 3 of 0.4 s: over
    assert sorted(per_row) == [1, 2, 4]
    assert preferred_size(per_row, 64) is None  # batch 64 might be cheaper still: no preference
    assert preferred_size(timings(lambda n: 0.1 * n, 4, budget_s=1e9), 4) == 1  # finished: all equal, the smallest
    assert preferred_size({}, 8) is None


def test_the_service_tunes_fixed_shape_models_after_readiness_and_reports_it() -> None:
    with ready_client() as client:
        registry = client.app.state.registry
        task = registry._warm_task
        client.portal.call(lambda: task)  # tuning runs after readiness, in the warm-up thread
        models = {m["name"]: m for m in client.get("/models").json()["models"]}
        lenet = models["lenet5_digits"]
        assert set(lenet["batch_tuning_ms_per_row"]) >= {"1", "2", "4"}
        assert all(v > 0 for v in lenet["batch_tuning_ms_per_row"].values())
        chosen = lenet["preferred_batch_sizes"]
        per_row = {int(k): v for k, v in lenet["batch_tuning_ms_per_row"].items()}
        want = preferred_size(per_row, lenet["max_batch_size"])
        assert chosen == ([want] if want else [])
        assert models["unet_denoise_gray"]["batch_tuning_ms_per_row"] is None  # any-size models are left alone
    with ready_client(batch_tune="off") as client:
        client.portal.call(lambda: client.app.state.registry._warm_task)
        lenet = client.get("/models/lenet5_digits").json()
        assert lenet["batch_tuning_ms_per_row"] is None and lenet["preferred_batch_sizes"] == []


def _rss_mib() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim")
def test_trim_heap_returns_freed_heap_memory_to_the_system() -> None:
    # what the sweep's large batches leave behind: freed buffers between live ones, which glibc keeps
    blobs = [bytearray(64 * 1024) for _ in range(2000)]
    keep = blobs[::2]
    del blobs
    before = _rss_mib()
    assert trim_heap()
    assert before - _rss_mib() > 30  # ~62 MiB were freed between live buffers
    assert len(keep) == 1000
