"""Command line: ``python -m training {classify,models,eval,archs}``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path


def _add_config_args(p: argparse.ArgumentParser) -> None:
    from training.classify import ClassifyConfig

    for f in fields(ClassifyConfig):
        if f.name == "model_kwargs":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            kind = {int: int, float: float}.get(type(default), str)
            if f.name in ("width",):
                kind = float
            if f.name in ("max_batches",):
                kind = int
            p.add_argument(flag, type=kind, default=default)


def cmd_classify(args: argparse.Namespace) -> int:
    from training.classify import ClassifyConfig, train_classifier

    cfg = ClassifyConfig(**{f.name: getattr(args, f.name) for f in fields(ClassifyConfig) if f.name != "model_kwargs"})
    export_to = Path(args.export_to) if args.export_to else None
    result = train_classifier(cfg, export_to=export_to, version=args.version, overwrite=args.overwrite)
    print(json.dumps(result, indent=2))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from training.classify import train_classifier
    from training.defaults import DEFAULT_CLASSIFIERS

    names = args.only or list(DEFAULT_CLASSIFIERS)
    for name in names:
        cfg = DEFAULT_CLASSIFIERS[name]
        cfg.out = args.out
        result = train_classifier(cfg, export_to=Path(args.models), version=1, overwrite=args.overwrite)
        print(
            f"{name}: test accuracy {100 * result['test_accuracy']:.2f} %, "
            f"{result['onnx_bytes'] / 1e6:.2f} MB, {result['train_seconds']:.0f} s",
            flush=True,
        )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from training.eval_repo import evaluate_repository

    results = evaluate_repository(Path(args.models), args.tolerance)
    if not results:
        print(f"no models under {args.models}", file=sys.stderr)
        return 1
    for r in results:
        print(f"{'OK  ' if r.ok else 'FAIL'} {r.name:24s} {r.message}")
    return 0 if all(r.ok for r in results) else 1


def cmd_archs(args: argparse.Namespace) -> int:
    from training.nets import get_arch, list_archs

    for name in list_archs():
        a = get_arch(name)
        print(
            f"{name:12s} family={a.family:10s} presets={','.join(a.presets):15s} "
            f"torchvision={a.torchvision_name or '-'}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("classify", help="train one classifier (and export it with --export-to)")
    _add_config_args(p)
    p.add_argument("--export-to", help="model repository to export into, e.g. models")
    p.add_argument("--version", type=int, default=None, help="version number (default: next free)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version")
    p.set_defaults(fn=cmd_classify)

    p = sub.add_parser("models", help="retrain and export every default model")
    p.add_argument("--models", default="models")
    p.add_argument("--out", default="runs")
    p.add_argument("--only", nargs="*", help="default model names to retrain")
    p.add_argument("--overwrite", action="store_true", help="replace the committed version 1")
    p.set_defaults(fn=cmd_models)

    p = sub.add_parser("eval", help="re-evaluate the repository's ONNX models against their cards")
    p.add_argument("--models", default="models")
    p.add_argument("--tolerance", type=float, default=0.5, help="allowed drop in accuracy points")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("archs", help="list the registered architectures")
    p.set_defaults(fn=cmd_archs)

    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
