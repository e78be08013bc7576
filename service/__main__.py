"""``python -m service`` (or ``convserve serve``): run the HTTP service with uvicorn."""

from __future__ import annotations

import argparse
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

    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        http=JsonErrorHttpProtocol,
    )
    return 0


def _exit_cleanly(signum: int, frame) -> None:
    raise SystemExit(0)


def serve_multiprocess(settings, host: str, port: int) -> int:
    """N uvicorn workers (HTTP, decode, preprocess) feeding one inference engine process.

    The engine owns the ONNX Runtime sessions and the dynamic batchers, so requests from every
    worker are batched together; tensors travel through each worker's shared-memory arena and a
    small control message goes over a Unix socket. Metrics of all processes are merged.
    """
    import multiprocessing as mp
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from service.engine import run_engine

    work = Path(tempfile.mkdtemp(prefix="convserve-"))
    socket_path = str(work / "engine.sock")
    (work / "metrics").mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(work / "metrics")  # before any worker imports prometheus_client
    os.environ["CONVSERVE_ENGINE_SOCKET"] = socket_path
    engine = mp.get_context("spawn").Process(target=run_engine, args=(settings, socket_path), name="convserve-engine")
    engine.start()
    try:
        deadline = time.time() + 600
        while not os.path.exists(socket_path):
            if not engine.is_alive():
                print(f"the inference engine failed to start (exit code {engine.exitcode})", file=sys.stderr)
                return 1
            if time.time() > deadline:
                print("the inference engine did not start within 10 minutes", file=sys.stderr)
                return 1
            time.sleep(0.05)
        uvicorn.run(
            "service.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=settings.workers,
            log_level=settings.log_level,
            access_log=False,
            timeout_graceful_shutdown=settings.shutdown_timeout_s,
            http=JsonErrorHttpProtocol,
        )
        return 0
    finally:
        engine.terminate()
        engine.join(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
