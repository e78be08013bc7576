"""Front-end side of the engine: a registry mirror and a batcher stand-in that forward to the engine.

Routes and tasks see the same interface as in single-process mode (``registry.models[name]``
with ``.batcher.infer(x, timeout)``); only where the tensor goes differs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import numpy as np

from modelrepo.card import ModelCard
from service.arena import SlotArena
from service.batcher import QueueFullError, Timing
from service.errors import ApiError
from service.registry import ModelState, RegistryBase
from service.settings import Settings
from service.wire import read_frame, write_frame

log = logging.getLogger("convserve.remote")


class EngineClient:
    """One connection to the engine, multiplexed by request id; owns this worker's arena."""

    def __init__(self, socket_path: str, slots: int, slot_bytes: int) -> None:
        self.socket_path = socket_path
        self.arena = SlotArena(slots, slot_bytes)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self.engine_pid: int | None = None

    async def connect(self) -> None:
        reader, self._writer = await asyncio.open_unix_connection(self.socket_path)
        self._reader_task = asyncio.create_task(self._read(reader))
        h, _ = await self.send({"op": "hello", "arena": self.arena.name, "slot_bytes": self.arena.slot_bytes})
        self.engine_pid = h.get("pid")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                header, payload = await read_frame(reader)
                fut = self._pending.pop(header.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result((header, payload))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            log.error("lost the inference engine: %s", exc)
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("the inference engine is gone"))
            self._pending.clear()
            self._writer = None

    @property
    def connected(self) -> bool:
        return self._writer is not None

    def send(self, header: dict, payload: bytes = b"") -> asyncio.Future:
        """Send one request; the future resolves to the engine's (header, payload)."""
        fut = asyncio.get_running_loop().create_future()
        if self._writer is None:
            fut.set_exception(ConnectionError("not connected to the inference engine"))
            return fut
        rid = next(self._ids)
        self._pending[rid] = fut
        write_frame(self._writer, header | {"id": rid}, payload)
        return fut

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._writer is not None:
            self._writer.close()
        self.arena.close()


class RemoteBatcher:
    """Same ``infer`` as DynamicBatcher; the batching happens in the engine."""

    def __init__(self, client: EngineClient, model: str, version: int | None, max_batch_size: int) -> None:
        self.client, self.model, self.version, self.max_batch_size = client, model, version, max_batch_size
        self.preferred: tuple[int, ...] = ()  # the engine's batcher's (shown in /models), refreshed from its status

    async def infer(self, x: np.ndarray, timeout_s: float) -> tuple[np.ndarray, Timing]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        arena = self.client.arena
        slot = arena.try_acquire() if x.nbytes <= arena.slot_bytes else None
        header = {
            "op": "infer",
            "model": self.model,
            "version": self.version,
            "shape": list(x.shape),
            "timeout": timeout_s,
        }
        if slot is None:  # too big for a slot, or all slots busy: inline on the socket
            fut = self.client.send(header | {"slot": -1}, x.tobytes())
        else:
            arena.view(slot, x.shape)[...] = x
            fut = self.client.send(header | {"slot": slot})
        abandoned = False

        def release_late(_: asyncio.Future) -> None:
            if abandoned:  # the engine answered after we gave up: only now may the slot be reused
                arena.release(slot)

        if slot is not None:
            fut.add_done_callback(release_late)
        try:
            h, payload = await asyncio.wait_for(asyncio.shield(fut), timeout_s + 5)
        except ConnectionError as exc:
            if slot is not None:
                arena.release(slot)
            raise ApiError(503, "engine_unavailable", str(exc), {"Retry-After": "5"}) from None
        except BaseException:
            if slot is not None:
                if fut.done():
                    arena.release(slot)
                else:
                    abandoned = True
            raise
        try:
            if "error" in h:
                e = h["error"]
                if e["code"] == "queue_full":
                    raise QueueFullError(e["message"])
                if e["code"] == "timeout":
                    raise TimeoutError(e["message"])
                if e["code"] == "inference_failed":  # the route's guard answers it, as in-process
                    raise RuntimeError(e["message"])
                raise ApiError(e["status"], e["code"], e["message"])
            if h["in_slot"]:
                out = arena.view(slot, tuple(h["shape"])).copy()
            else:
                out = np.frombuffer(payload, np.float32).reshape(h["shape"])
            return out, Timing(h["queue_s"], h["inference_s"], h["batch_rows"])
        finally:
            if slot is not None:
                arena.release(slot)


class RemoteRegistry(RegistryBase):
    """The engine's model states, mirrored in a front-end worker and refreshed in the background."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        assert settings.engine_socket
        self.settings = settings
        self.client = EngineClient(settings.engine_socket, settings.arena_slots, settings.arena_slot_bytes)
        self._poll: asyncio.Task | None = None
        self._engine_ready = False

    async def start(self, warmup: bool = True) -> None:
        """Connect to the engine and read its models. An engine that is down (its supervisor is restarting
        it) does not fail start-up: the worker starts not ready and the status poll reconnects. Failing
        would stop the whole server - uvicorn ends every worker when a (re)started one fails its start-up,
        and a worker restarted while the engine restarts would."""
        try:
            await self.client.connect()
            await self.refresh()
        except OSError as exc:  # ConnectionError and a missing socket file are OSErrors
            log.warning("the inference engine is not reachable (%s): starting not ready, reconnecting", exc)
        self._poll = asyncio.create_task(self._poll_status())

    async def refresh(self) -> None:
        h, _ = await self.client.send({"op": "status"})
        for m in h["models"]:
            versions = self.versions.setdefault(m["name"], {})
            state = versions.get(m["version"]) if m["version"] is not None else self.models.get(m["name"])
            if state is None:
                card = ModelCard.model_validate(m["card"]) if m["card"] else None
                state = ModelState(m["name"], card, version=m["version"])
                state.batcher = RemoteBatcher(self.client, m["name"], m["version"], m.get("max_batch_size") or 8)
                if m["version"] is not None:
                    versions[m["version"]] = state
            if m["latest"]:
                self.models[m["name"]] = state
            state.status, state.reason = m["status"], m["reason"]
            state.providers, state.requested, state.fallback = m["providers"], m["requested_providers"], m["fallback"]
            state.warmup_ms, state.io_binding, state.batch_buckets = m["warmup_ms"], m["io_binding"], m["batch_buckets"]
            state.batch_tuning = m.get("batch_tuning_ms_per_row")
            if isinstance(state.batcher, RemoteBatcher):
                state.batcher.preferred = tuple(m.get("preferred_batch_sizes") or ())
        self.loaded, self._engine_ready = h["loaded"], h["ready"]

    async def _poll_status(self) -> None:
        while True:
            await asyncio.sleep(0.2 if not self._engine_ready else 2.0)
            try:
                await self.refresh()
            except ConnectionError:
                self._engine_ready = False
                for s in self.all_states():
                    s.status, s.reason = "unavailable", "the inference engine is gone"
                try:  # the supervisor restarts a dead engine on the same socket: reconnect to it
                    await self.client.connect()
                    log.info("reconnected to the inference engine")
                except OSError:
                    pass

    @property
    def ready(self) -> bool:
        return self._engine_ready and self.client.connected

    @property
    def engine_pid(self) -> int | None:
        return self.client.engine_pid if self._engine_ready else None

    async def aclose(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
        await self.client.close()
