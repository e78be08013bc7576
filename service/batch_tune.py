"""Which batch size a model runs fastest per row, measured on the host that serves it.

Batching across requests pays when a bigger batch costs less per row - true for small networks and on
GPUs, much less so for a compute-bound network on a CPU: on this project's 2-core machine ResNet-50's raw
throughput was best at batch 1 in one bench run and at batch 8 in the next (within ~20 %). So once every
model is ready, each fixed-shape model (a classifier; any-size models batch the tiles of one request and
are left alone) is timed at batch 1, 2, 4, ... up to its maximum (after readiness, within a budget; a sweep
that cannot finish changes nothing), and when a smaller batch is as fast per row as any larger one, it
becomes the model's preferred batch size (``dynamic_batching { preferred_batch_size }``, which the model's
config.pbtxt can also set and then wins). ``CONVSERVE_BATCH_TUNE=off`` turns it off.

The sweep's largest batches grow ONNX Runtime's memory arena (~100 MiB over the committed classifiers): the
service shrinks it after each model's sweep and trims the C heap after the last (``trim_heap``), so that start-up
memory is what it was without tuning.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable

import numpy as np

CANDIDATES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SLACK = 0.05  # a smaller batch within 5 % of the fastest per row is chosen: same throughput, lower latency


def seconds_per_row(
    run: Callable[[np.ndarray], object],
    make_input: Callable[[int], np.ndarray],
    max_batch: int,
    budget_s: float = 10.0,
    repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[int, float]:
    """Best-of-``repeats`` seconds per row at each batch size 1, 2, 4, ... up to ``max_batch`` (itself
    included), stopping early once ``budget_s`` is spent."""
    sizes = sorted({n for n in CANDIDATES if n < max_batch} | {max_batch})
    out: dict[int, float] = {}
    start = clock()
    for n in sizes:
        x = make_input(n)
        best = float("inf")
        for _ in range(repeats):
            t0 = clock()
            run(x)
            best = min(best, clock() - t0)
        out[n] = best / n
        if clock() - start > budget_s:
            break
    return out


def preferred_size(per_row: dict[int, float], max_batch: int, slack: float = SLACK) -> int | None:
    """The smallest batch size within ``slack`` of the fastest per row, or None when that is the maximum or
    the sweep did not reach the maximum (a larger batch might be faster): then batches fill up to the maximum,
    as without tuning."""
    if not per_row or max(per_row) != max_batch:
        return None
    fastest = min(per_row.values())
    chosen = min(n for n, v in per_row.items() if v <= fastest * (1 + slack))
    return chosen if chosen < max_batch else None


def trim_heap() -> bool:
    """Give the C heap's free memory back to the system (glibc ``malloc_trim``; elsewhere nothing). The sweep's
    large batches leave freed buffers that glibc otherwise keeps. True when memory was returned."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return False
    return bool(trim(0))
