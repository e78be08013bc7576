"""The dynamic batcher on its own: slices, shapes, overload, time-outs, failures."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from service.batcher import DynamicBatcher, QueueFullError


def slow_double(delay_s: float, batches: list[int]):
    def run(x: np.ndarray) -> np.ndarray:
        batches.append(len(x))
        time.sleep(delay_s)
        return x * 2.0

    return run


def test_concurrent_distinct_requests_get_their_own_rows_and_are_batched() -> None:
    batches: list[int] = []

    async def main() -> list:
        b = DynamicBatcher("m", slow_double(0.01, batches), max_batch_size=8, max_delay_ms=2, max_queue=1000)
        xs = [np.full((1 + i % 3, 2), float(i), np.float32) for i in range(50)]
        outs = await asyncio.gather(*(b.infer(x, timeout_s=10) for x in xs))
        await b.aclose()
        return list(zip(xs, outs))

    for x, (y, timing) in asyncio.run(main()):
        np.testing.assert_array_equal(y, x * 2.0)
        assert timing.batch_rows >= len(x)
    assert max(batches) > 1  # requests that arrived while the model was busy rode together
    assert max(batches) <= 8  # the model never sees more than max_batch_size rows (big batches run in chunks)


def test_idle_request_runs_at_once_without_the_batching_window() -> None:
    async def main():
        b = DynamicBatcher("m", lambda x: x, max_batch_size=8, max_delay_ms=500, max_queue=100)
        _, timing = await b.infer(np.zeros((1, 2), np.float32), timeout_s=10)
        await b.aclose()
        return timing

    assert asyncio.run(main()).queue_s < 0.25  # far below the 500 ms window


def test_different_row_shapes_are_never_mixed() -> None:
    batches: list[tuple] = []

    def run(x: np.ndarray) -> np.ndarray:
        batches.append(x.shape)
        time.sleep(0.005)
        return x + 1

    async def main():
        b = DynamicBatcher("m", run, max_batch_size=16, max_delay_ms=1, max_queue=1000)
        xs = [np.zeros((1, 3 + i % 2), np.float32) for i in range(20)]
        outs = await asyncio.gather(*(b.infer(x, 10) for x in xs))
        await b.aclose()
        return xs, outs

    xs, outs = asyncio.run(main())
    for x, (y, _) in zip(xs, outs):
        assert y.shape == x.shape
    assert {s[1] for s in batches} == {3, 4}


def test_full_queue_refuses_a_request() -> None:
    async def main():
        b = DynamicBatcher("m", slow_double(0.2, []), max_batch_size=1, max_delay_ms=0, max_queue=2)
        first = asyncio.create_task(b.infer(np.zeros((1, 1), np.float32), 10))
        await asyncio.sleep(0.02)  # the first is running; the next two wait
        queued = [asyncio.create_task(b.infer(np.zeros((1, 1), np.float32), 10)) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError):
            await b.infer(np.zeros((1, 1), np.float32), 10)
        await first
        await asyncio.gather(*queued)
        await b.aclose()

    asyncio.run(main())


def test_timed_out_request_leaves_the_queue() -> None:
    async def main():
        b = DynamicBatcher("m", slow_double(0.2, []), max_batch_size=1, max_delay_ms=0, max_queue=10)
        first = asyncio.create_task(b.infer(np.zeros((1, 1), np.float32), 10))
        await asyncio.sleep(0.02)
        with pytest.raises(TimeoutError):
            await b.infer(np.zeros((1, 1), np.float32), 0.05)
        await first
        await asyncio.sleep(0.01)
        rows = b.queued_rows
        await b.aclose()
        return rows

    assert asyncio.run(main()) == 0


def test_model_failure_reaches_every_caller_of_the_batch() -> None:
    def boom(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("bad batch")

    async def main():
        b = DynamicBatcher("m", boom, max_batch_size=4, max_delay_ms=0, max_queue=10)
        results = await asyncio.gather(
            *(b.infer(np.zeros((1, 1), np.float32), 5) for _ in range(3)), return_exceptions=True
        )
        await b.aclose()
        return results

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))


@pytest.mark.parametrize("delay_s, inline", [(0.0, True), (0.003, False)])
def test_a_light_model_runs_on_the_event_loop_and_a_heavy_one_on_its_thread(delay_s, inline) -> None:
    import threading

    threads: list[int] = []

    def run(x: np.ndarray) -> np.ndarray:
        threads.append(threading.get_ident())
        if delay_s:
            time.sleep(delay_s)
        return x + 1.0

    async def main() -> int:
        b = DynamicBatcher("m", run, max_batch_size=4, max_delay_ms=0, max_queue=100)
        for _ in range(5):
            y, _ = await b.infer(np.zeros((1, 2), np.float32), timeout_s=5)
            assert float(y[0, 0]) == 1.0
        await b.aclose()
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert threads[0] != loop_thread  # unmeasured: the first batch goes to the model's thread
    assert all((t == loop_thread) == inline for t in threads[1:])


def test_one_slow_batch_sends_a_light_model_back_to_its_thread() -> None:
    import threading

    threads: list[int] = []
    delays = [0.0, 0.0, 0.0, 0.01, 0.0, 0.0]

    def run(x: np.ndarray) -> np.ndarray:
        threads.append(threading.get_ident())
        time.sleep(delays[len(threads) - 1])
        return x

    async def main() -> int:
        b = DynamicBatcher("m", run, max_batch_size=4, max_delay_ms=0, max_queue=100)
        for _ in delays:
            await b.infer(np.zeros((1, 2), np.float32), timeout_s=5)
        await b.aclose()
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    on_loop = [t == loop_thread for t in threads]
    assert on_loop[1:4] == [True, True, True] and on_loop[4:] == [False, False]  # 10 ms decays slowly


def test_preferred_batch_sizes_cut_a_long_queue_into_preferred_batches() -> None:
    """Triton's preferred_batch_size: with 20 rows queued behind a busy model and preferred [4, 8], the
    batches are 8, 8 and then 4 (the largest preferred size the queue fills), never the maximum 16."""
    batches: list[int] = []

    async def main():
        b = DynamicBatcher(
            "m", slow_double(0.05, batches), max_batch_size=16, max_delay_ms=0, max_queue=100, preferred=[8, 4, 32]
        )
        assert b.preferred == (4, 8)  # sorted; a size above the maximum is dropped
        first = asyncio.ensure_future(b.infer(np.zeros((1, 2), np.float32), 10))  # keeps the model busy
        await asyncio.sleep(0.01)
        xs = [np.full((1, 2), float(i), np.float32) for i in range(20)]
        outs = await asyncio.gather(*(b.infer(x, 10) for x in xs))
        await first
        await b.aclose()
        return xs, outs

    xs, outs = asyncio.run(main())
    for x, (y, _) in zip(xs, outs):
        np.testing.assert_array_equal(y, x * 2.0)
    assert batches == [1, 8, 8, 4]


def test_without_preferred_sizes_a_long_queue_goes_in_maximum_batches() -> None:
    batches: list[int] = []

    async def main():
        b = DynamicBatcher("m", slow_double(0.05, batches), max_batch_size=16, max_delay_ms=0, max_queue=100)
        first = asyncio.ensure_future(b.infer(np.zeros((1, 2), np.float32), 10))
        await asyncio.sleep(0.01)
        await asyncio.gather(*(b.infer(np.zeros((1, 2), np.float32), 10) for _ in range(20)))
        await first
        await b.aclose()

    asyncio.run(main())
    assert batches == [1, 16, 4]
