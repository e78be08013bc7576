"""``python -m service``: until the HTTP service lands, check and list the model repository.

The REST service itself (``/classify`` and the rest) is the next issue; this entry point already
does what the service will do first at start-up - validate every card and sha256, open every
model with ONNX Runtime and report which execution provider actually runs it - and then exits
with status 2 and says so, rather than pretending to serve.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnxruntime as ort

from modelrepo.repository import scan_repository

EXIT_NOT_IMPLEMENTED = 2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m service")
    p.add_argument("--models", default="models", help="model repository folder")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args(argv)

    entries = scan_repository(Path(args.models))
    print(f"model repository {args.models}: {len(entries)} model(s); "
          f"ONNX Runtime {ort.__version__}, available providers {ort.get_available_providers()}")
    for e in entries:
        if not e.ok:
            print(f"  UNAVAILABLE {e.name}: {'; '.join(e.problems)}")
            continue
        card = e.card
        assert card is not None
        sess = ort.InferenceSession(str(e.version_path()),
                                    providers=[p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                                               if p in ort.get_available_providers()])
        metric = ", ".join(f"{k} {v:.4f}" for k, v in card.metrics.items())
        print(f"  {e.name} v{card.latest_version}: {card.task}, {card.architecture.name} "
              f"({card.architecture.num_parameters:,} params), input {card.input.color_mode} "
              f"{card.input.height}x{card.input.width}, {metric}; runs on {sess.get_providers()[0]}")
    print(f"\nThe HTTP service on http://{args.host}:{args.port} is not implemented yet (the service-core "
          "issue); nothing is being served. Exiting with status 2.", file=sys.stderr)
    return EXIT_NOT_IMPLEMENTED


if __name__ == "__main__":
    sys.exit(main())
