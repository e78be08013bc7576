"""The inference engine: one process per device that owns the ONNX Runtime sessions and the
dynamic batchers, serving front-end workers over a Unix socket with tensors in shared memory.

With ``--workers N`` the HTTP work (parsing, decoding, preprocessing, encoding) scales across
N uvicorn worker processes while each model's inference stays batched in this one place.
"""

from __future__ import annotations

import asyncio
import logging
import os

import numpy as np

from service.arena import attach, attach_view
from service.batcher import QueueFullError
from service.metrics import ServiceMetrics
from service.registry import ModelRegistry
from service.settings import Settings
from service.wire import read_frame, write_frame

log = logging.getLogger("convserve.engine")


def status_message(registry: ModelRegistry) -> dict:
    return {
        "loaded": registry.loaded,
        "ready": registry.ready,
        "models": [
            s.summary()
            | {"card": s.card.model_dump(mode="json") if s.card else None, "latest": registry.models[s.name] is s}
            for s in registry.all_states()
        ],
    }


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = ModelRegistry(settings, ServiceMetrics())

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        shm, slot_bytes, tasks = None, 0, set()
        try:
            while True:
                header, payload = await read_frame(reader)
                op = header.get("op")
                if op == "hello":
                    shm, slot_bytes = attach(header["arena"]), header["slot_bytes"]
                    write_frame(writer, {"id": header["id"], "ok": True, "pid": os.getpid()})
                elif op == "status":
                    write_frame(writer, {"id": header["id"]} | status_message(self.registry))
                elif op == "infer":
                    t = asyncio.create_task(self._infer(header, payload, shm, slot_bytes, writer))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                else:
                    write_frame(writer, {"id": header.get("id"), "error": _err(400, "bad_op", f"unknown op {op!r}")})
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the front-end went away
        finally:
            for t in tasks:
                t.cancel()
            writer.close()
            if shm is not None:
                shm.close()

    async def _infer(self, h: dict, payload: bytes, shm, slot_bytes: int, writer: asyncio.StreamWriter) -> None:
        reply = {"id": h["id"]}
        state = self.registry.get(h["model"], h.get("version"))
        if state is None or not state.ready or state.batcher is None:
            why = "unknown model" if state is None else state.reason or state.status
            write_frame(writer, reply | {"error": _err(503, "model_not_ready", f"{h['model']}: {why}")})
            return
        slot = h.get("slot", -1)
        shape = tuple(h["shape"])
        if slot >= 0:
            x = attach_view(shm, slot_bytes, slot, shape, "float32")
        else:
            x = np.frombuffer(payload, np.float32).reshape(shape)
        try:
            out, timing = await state.batcher.infer(x, h["timeout"])
        except QueueFullError as exc:
            write_frame(writer, reply | {"error": _err(503, "queue_full", str(exc))})
            return
        except TimeoutError:
            write_frame(writer, reply | {"error": _err(504, "timeout", f"no result within {h['timeout']} s")})
            return
        except Exception as exc:  # noqa: BLE001 - the caller hears about any model failure
            log.exception("inference failed for %s", h["model"])
            write_frame(writer, reply | {"error": _err(500, "inference_failed", f"{type(exc).__name__}: {exc}")})
            return
        out = np.ascontiguousarray(out, dtype=np.float32)
        reply |= {
            "shape": list(out.shape),
            "queue_s": timing.queue_s,
            "inference_s": timing.inference_s,
            "batch_rows": timing.batch_rows,
        }
        if slot >= 0 and out.nbytes <= slot_bytes:  # the input in this slot is no longer needed
            attach_view(shm, slot_bytes, slot, out.shape, "float32")[...] = out
            write_frame(writer, reply | {"in_slot": True})
        else:
            write_frame(writer, reply | {"in_slot": False}, out.data)

    async def serve(self, socket_path: str) -> None:
        await self.registry.start(warmup=True)
        server = await asyncio.start_unix_server(self.handle, path=socket_path)
        log.info("engine %d serving on %s", os.getpid(), socket_path)
        async with server:
            await server.serve_forever()


def _err(status: int, code: str, message: str) -> dict:
    return {"status": status, "code": code, "message": message}


def run_engine(settings: Settings, socket_path: str) -> None:
    """Process entry point (spawned by the supervisor in ``service.__main__``)."""
    from service.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(Engine(settings).serve(socket_path))
