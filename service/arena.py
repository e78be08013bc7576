"""A shared-memory arena of fixed-size slots: a front-end worker writes a request's tensor into a
slot, the engine reads it in place and writes the result back into the same slot."""

from __future__ import annotations

import asyncio
from multiprocessing import shared_memory

import numpy as np


class SlotArena:
    """Owned by one front-end process; the engine attaches to it by name."""

    def __init__(self, slots: int, slot_bytes: int) -> None:
        self.slots, self.slot_bytes = slots, slot_bytes
        self.shm = shared_memory.SharedMemory(create=True, size=slots * slot_bytes)
        self._free: asyncio.Queue[int] | None = None

    @property
    def name(self) -> str:
        return self.shm.name

    def _queue(self) -> asyncio.Queue[int]:
        if self._free is None:
            self._free = asyncio.Queue()
            for i in range(self.slots):
                self._free.put_nowait(i)
        return self._free

    def try_acquire(self) -> int | None:
        q = self._queue()
        return None if q.empty() else q.get_nowait()

    def release(self, slot: int) -> None:
        self._queue().put_nowait(slot)

    def view(self, slot: int, shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
        return attach_view(self.shm, self.slot_bytes, slot, shape, dtype)

    def close(self) -> None:
        self.shm.close()
        self.shm.unlink()


def attach_view(shm: shared_memory.SharedMemory, slot_bytes: int, slot: int, shape, dtype: str) -> np.ndarray:
    """A numpy view of ``shape`` at the start of ``slot`` (no copy)."""
    return np.ndarray(tuple(shape), dtype=np.dtype(dtype), buffer=shm.buf, offset=slot * slot_bytes)


def attach(name: str) -> shared_memory.SharedMemory:
    """Attach to a worker's arena. The worker creates and unlinks it; the engine and the workers share
    the supervisor's resource tracker (all are spawned from it), so attaching registers nothing new."""
    return shared_memory.SharedMemory(name=name)
