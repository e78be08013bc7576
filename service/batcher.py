"""Dynamic batching: one queue and one inference thread per model.

Requests that arrive while the model is busy are gathered and run together, up to the model's
max batch size; each caller gets its own slice back. When the model is idle a request runs at
once - there is no fixed batching window. Only under load (the last batch held more than one
request) does the batcher wait up to ``max_delay_ms`` from the oldest request to fill a batch.
With ``preferred`` batch sizes (Triton's ``dynamic_batching { preferred_batch_size }``) a batch is
the largest preferred size the queue can fill, so a model whose throughput peaks at batch 8 is not
handed 32 rows at once under heavy load; it waits for the largest preferred size, not the maximum.

A batch runs on the model's inference thread, so the event loop keeps serving - except where that
hop costs more than the work: once the model's recent batches took less than ``INLINE_S`` each
(a LeNet-5 batch takes ~0.05 ms, handing it to a thread and back ~0.3 ms), the loop runs it itself.
One slower batch sends the model back to its thread.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

INLINE_S = 0.0005  # batches faster than this (the recent worst) run on the event loop, not the thread


class QueueFullError(Exception):
    """The model's queue holds ``max_queue`` images already."""


@dataclass(frozen=True)
class Timing:
    queue_s: float
    inference_s: float
    batch_rows: int


def timings_ms(t0: float, t1: float, timing: Timing) -> dict[str, float]:
    """A response's timings: decode (t0 -> t1), queue and inference (from the batcher), total (t0 -> now)."""
    return {
        "decode_ms": round(1000 * (t1 - t0), 3),
        "queue_ms": round(1000 * timing.queue_s, 3),
        "inference_ms": round(1000 * timing.inference_s, 3),
        "total_ms": round(1000 * (time.perf_counter() - t0), 3),
    }


class Batcher(Protocol):
    """What a route needs of a model's batcher: in-process (``DynamicBatcher``) or in the engine
    process (``service.remote.RemoteBatcher``)."""

    max_batch_size: int

    def _timed(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """``run_chunked`` and how long the model itself took (without the hop to its thread)."""
        t = time.perf_counter()
        out = self.run_chunked(x)
        return out, time.perf_counter() - t

    async def infer(self, x: np.ndarray, timeout_s: float) -> tuple[np.ndarray, Timing]: ...


@dataclass
class _Item:
    x: np.ndarray  # (n, ...) rows of this request
    future: asyncio.Future
    enqueued: float


# rows, requests, queue times, inference time, rows still queued
BatchObserver = Callable[[int, int, list[float], float, int], None]


class DynamicBatcher:
    def __init__(
        self,
        name: str,
        run: Callable[[np.ndarray], np.ndarray],
        max_batch_size: int,
        max_delay_ms: float,
        max_queue: int,
        observer: BatchObserver | None = None,
        preferred: list[int] | tuple[int, ...] = (),
    ) -> None:
        self.name = name
        self._run = run
        self.max_batch_size = max_batch_size
        self.preferred = tuple(sorted({p for p in preferred if 1 <= p <= max_batch_size}))
        self.max_delay_s = max_delay_ms / 1000
        self.max_queue = max_queue
        self._observer = observer
        self._pending: deque[_Item] = deque()
        self._rows = 0
        self._last_batch_requests = 0
        self._recent_s = float("inf")  # the slowest of the recent batches (decays): inf until measured
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"infer-{name}")
        self._event: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    @property
    def queued_rows(self) -> int:
        return self._rows

    def run_chunked(self, x: np.ndarray) -> np.ndarray:
        """Run ``x`` through the model in chunks of at most ``max_batch_size`` rows."""
        if len(x) <= self.max_batch_size:
            return self._run(x)
        return np.concatenate(
            [self._run(x[i : i + self.max_batch_size]) for i in range(0, len(x), self.max_batch_size)]
        )

    def _timed(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """``run_chunked`` and how long the model itself took (without the hop to its thread)."""
        t = time.perf_counter()
        out = self.run_chunked(x)
        return out, time.perf_counter() - t

    async def infer(self, x: np.ndarray, timeout_s: float) -> tuple[np.ndarray, Timing]:
        """Queue ``x`` (n rows), wait for its outputs; QueueFullError or TimeoutError otherwise."""
        if self._rows + len(x) > self.max_queue and self._rows > 0:
            raise QueueFullError(f"{self.name}: {self._rows} images queued (limit {self.max_queue})")
        self._ensure_started()
        assert self._event is not None
        item = _Item(x, asyncio.get_running_loop().create_future(), time.perf_counter())
        self._pending.append(item)
        self._rows += len(x)
        self._event.set()
        # on timeout the awaited future is cancelled; the loop then drops the item if it is still queued
        async with asyncio.timeout(timeout_s):  # cheaper than wait_for: no extra task per request
            return await item.future

    def _ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._event = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")

    def _drop_cancelled(self) -> None:
        while self._pending and self._pending[0].future.done():
            self._rows -= len(self._pending.popleft().x)

    def _limit(self) -> int:
        """Rows the next batch may take: the largest preferred size the queued rows fill, else the maximum."""
        fills = [p for p in self.preferred if p <= self._rows]
        return fills[-1] if fills else self.max_batch_size

    def _take(self) -> list[_Item]:
        """FIFO items sharing the first item's row shape, up to ``_limit()`` rows (at least one item)."""
        first = self._pending[0]
        shape = first.x.shape[1:]
        limit = self._limit()
        taken, rows, keep = [], 0, deque()
        while self._pending:
            item = self._pending.popleft()
            if item.future.done():
                self._rows -= len(item.x)
                continue
            fits = rows + len(item.x) <= limit or not taken
            if item.x.shape[1:] == shape and fits and rows < limit:
                taken.append(item)
                rows += len(item.x)
                self._rows -= len(item.x)
            else:
                keep.append(item)
        self._pending = keep
        return taken

    async def _fill(self) -> None:
        """Under load, wait until a full batch (the largest preferred size, else the maximum) is queued or the
        oldest request is max_delay old."""
        assert self._event is not None
        deadline = self._pending[0].enqueued + self.max_delay_s
        full = self.preferred[-1] if self.preferred else self.max_batch_size
        while self._rows < full and (left := deadline - time.perf_counter()) > 0:
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), left)
            except TimeoutError:
                break

    async def _loop(self) -> None:
        assert self._event is not None
        loop = asyncio.get_running_loop()
        while True:
            self._drop_cancelled()
            if not self._pending:
                self._event.clear()
                await self._event.wait()
                continue
            if self.max_delay_s > 0 and self._last_batch_requests > 1:
                await self._fill()
                self._drop_cancelled()
                if not self._pending:
                    continue
            items = self._take()
            self._last_batch_requests = len(items)
            batch = items[0].x if len(items) == 1 else np.concatenate([i.x for i in items])
            start = time.perf_counter()
            try:
                if self._recent_s < INLINE_S and len(batch) <= self.max_batch_size:
                    out, ran = self._timed(batch)
                else:
                    out, ran = await loop.run_in_executor(self._executor, self._timed, batch)
            except Exception as exc:  # the model failed on this batch: every caller in it hears why
                for i in items:
                    if not i.future.done():
                        i.future.set_exception(exc)
                continue
            took = time.perf_counter() - start
            self._recent_s = ran if self._recent_s == float("inf") else max(ran, 0.9 * self._recent_s)
            queue_times = [start - i.enqueued for i in items]
            offset = 0
            for item, q in zip(items, queue_times):
                n = len(item.x)
                if not item.future.done():
                    item.future.set_result((out[offset : offset + n], Timing(q, took, len(batch))))
                offset += n
            if self._observer is not None:
                self._observer(len(batch), len(items), queue_times, took, self._rows)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        for item in self._pending:
            if not item.future.done():
                item.future.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
