"""``python -m service`` (or ``convserve serve``): run the HTTP service with uvicorn."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from service.logs import configure_logging


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
    if settings.workers != 1:
        print(
            "--workers > 1 is not available yet: this build serves from one process with an in-process "
            "dynamic batcher (see the README).",
            file=sys.stderr,
        )
        return 2
    from service.app import create_app

    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
