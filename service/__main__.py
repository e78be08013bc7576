"""``python -m service`` (or ``convserve serve``): run the HTTP service with uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys

import uvicorn

from service.logs import configure_logging
from service.protocol import JsonErrorHttpProtocol


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "serve":  # `convserve serve ...`
        argv = argv[1:]
    p = argparse.ArgumentParser(prog="python -m service", description="Serve the model repository over HTTP.")
    p.add_argument("--models", help="model repository folder (CONVSERVE_MODELS_DIR; default: models)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, help="HTTP worker processes (CONVSERVE_WORKERS; default 1)")
    p.add_argument("--providers", help="auto | cuda | tensorrt | cpu, comma-separated (CONVSERVE_PROVIDERS)")
    p.add_argument("--log-format", choices=["text", "json"], help="CONVSERVE_LOG_FORMAT")
    args = p.parse_args(argv)
    for flag, env in (
        ("models", "MODELS_DIR"),
        ("workers", "WORKERS"),
        ("providers", "PROVIDERS"),
        ("log_format", "LOG_FORMAT"),
    ):
        if getattr(args, flag) is not None:
            os.environ[f"CONVSERVE_{env}"] = str(getattr(args, flag))

    from pydantic import ValidationError

    from service.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    # uvicorn drains requests in flight on SIGTERM, then re-raises the signal to the handler it found:
    # this one makes that a clean exit (status 0), as orchestrators expect of a graceful stop
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if settings.workers > 1:
        return serve_multiprocess(settings, args.host, args.port)
    from service.app import create_app

    uvicorn.run(create_app(settings), **_uvicorn_options(settings, args.host, args.port))
    return 0


def _uvicorn_options(settings, host: str, port: int) -> dict:
    """What every uvicorn start shares: address, logging (ours, not uvicorn's access log), the graceful
    shutdown bound and the protocol that answers invalid HTTP in JSON."""
    return {
        "host": host,
        "port": port,
        "log_level": settings.log_level,
        "access_log": False,
        "timeout_graceful_shutdown": settings.shutdown_timeout_s,
        "http": JsonErrorHttpProtocol,
    }


def _exit_cleanly(signum: int, frame) -> None:
    raise SystemExit(0)


def serve_multiprocess(settings, host: str, port: int) -> int:
    """N uvicorn workers (HTTP, decode, preprocess) feeding one inference engine process.

    The engine owns the ONNX Runtime sessions and the dynamic batchers, so requests from every
    worker are batched together; tensors travel through each worker's shared-memory arena and a
    small control message goes over a Unix socket. Metrics of all processes are merged.
    """
    import shutil
    import tempfile
    from pathlib import Path

    work = Path(tempfile.mkdtemp(prefix="convserve-"))
    socket_path = str(work / "engine.sock")
    (work / "metrics").mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(work / "metrics")  # before any worker imports prometheus_client
    os.environ["CONVSERVE_ENGINE_SOCKET"] = socket_path
    engine = EngineSupervisor(settings, socket_path)
    try:
        if not engine.start_and_wait():
            return 1
        uvicorn.run(
            "service.app:create_app_from_env",
            factory=True,
            workers=settings.workers,
            **_uvicorn_options(settings, host, port),
        )
        return 0
    finally:
        engine.stop()
        shutil.rmtree(work, ignore_errors=True)


class EngineSupervisor:
    """Starts the inference engine process and restarts it when it dies (backing off 1 s, 2 s, ...
    up to 30 s between restarts); the front-end workers reconnect to the new one on the same socket."""

    def __init__(self, settings, socket_path: str) -> None:
        import threading

        self.settings, self.socket_path = settings, socket_path
        self.process = None
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_loop, name="engine-supervisor", daemon=True)

    def _spawn(self) -> None:
        import multiprocessing as mp

        from service.engine import run_engine

        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        self.process = mp.get_context("spawn").Process(
            target=run_engine, args=(self.settings, self.socket_path), name="convserve-engine"
        )
        self.process.start()

    def start_and_wait(self, timeout_s: float = 600) -> bool:
        import time

        self._spawn()
        deadline = time.time() + timeout_s
        while not os.path.exists(self.socket_path):
            if not self.process.is_alive():
                print(f"the inference engine failed to start (exit code {self.process.exitcode})", file=sys.stderr)
                return False
            if time.time() > deadline:
                print("the inference engine did not start within 10 minutes", file=sys.stderr)
                return False
            time.sleep(0.05)
        self._watch.start()
        return True

    def _watch_loop(self) -> None:
        backoff = 1.0
        while not self._stop.wait(0.5):
            if self.process.is_alive():
                continue
            print(
                f"the inference engine exited (code {self.process.exitcode}); restarting it in {backoff:g} s",
                file=sys.stderr,
            )
            if self._stop.wait(backoff):
                return
            self._spawn()
            backoff = min(30.0, backoff * 2)

    def stop(self) -> None:
        self._stop.set()
        if self.process is not None:
            self.process.terminate()
            self.process.join(10)


if __name__ == "__main__":
    sys.exit(main())
