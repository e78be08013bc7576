"""Command line: ``python -m training {classify,segment,denoise,nowcast,models,eval,archs}``."""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from dataclasses import fields
from pathlib import Path

from training.analysis_cli import add_analysis_parsers


def field_help(config_cls) -> dict[str, str]:
    """Per field of a config dataclass, its comment (on its line and the comment lines just above it):
    the flag's --help, so the comment in the code is the one description."""
    try:
        lines = inspect.getsource(config_cls).splitlines()
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    above: list[str] = []
    for line in (s.strip() for s in lines):
        if line.startswith("#"):
            above.append(line.lstrip("#").strip())
            continue
        m = re.match(r"(\w+)\s*:[^=]+=[^#]*(?:#\s*(.*))?$", line)
        if m and (text := " ".join(filter(None, [*above, m.group(2)]))):
            out[m.group(1)] = text.replace("%", "%%")
        above = []
    return out


def _add_dataclass_args(p: argparse.ArgumentParser, config_cls) -> None:
    """One --flag per config field, typed from its default (None defaults take ints/floats as noted)."""
    helps = field_help(config_cls)
    for f in fields(config_cls):
        if f.name == "model_kwargs":
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=helps.get(f.name))
            continue
        if str(f.type).startswith("tuple[float, float]"):  # e.g. --train-radius 4 11
            p.add_argument(flag, type=float, nargs=2, default=f.default, help=helps.get(f.name))
            continue
        kind = {int: int, float: float}.get(type(f.default), str)
        if f.name == "width":
            kind = float
        if f.name == "max_batches":
            kind = int
        p.add_argument(flag, type=kind, default=f.default, help=helps.get(f.name))


def _add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--export-to", help="model repository to export into, e.g. models")
    p.add_argument("--version", type=int, default=None, help="version number (default: next free)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version")
    p.add_argument(
        "--fp16-weights",
        action="store_true",
        help="store the exported weights as float16 (half the file; computed in float32)",
    )


def cmd_train(args: argparse.Namespace) -> int:
    """Any task of the table: its config from the flags, trained (resumed) and optionally exported."""
    from training.tasks import TASKS

    task = TASKS[args.cmd]
    cls = task.config_class()
    cfg = cls(**{f.name: getattr(args, f.name) for f in fields(cls) if f.name != "model_kwargs"})
    export_to = Path(args.export_to) if args.export_to else None
    budget = args.budget_min * 60 if args.budget_min is not None else None
    init_from = Path(args.init_from) if args.init_from else None
    r = task.run(cfg, export_to, args.version, args.overwrite, args.resume, budget, init_from)
    if args.fp16_weights and r.get("exported"):
        from training.fp16_weights import convert_committed

        print(convert_committed(Path(r["exported"])))
    print(json.dumps({k: v for k, v in r.items() if k not in ("history", "rows")}, indent=2, default=str))
    print(f"{getattr(cfg, 'name', None) or getattr(cfg, 'model_name', '')}: {task.summary(r)}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Retrain and export every default model of every task (or those named by --only)."""
    from training.defaults import FP16_WEIGHTS
    from training.fp16_weights import convert_committed
    from training.tasks import TASKS

    table = {name: (task, cfg) for task in TASKS.values() for name, cfg in task.default_models().items()}
    names = args.only or list(table)
    unknown = set(names) - set(table)
    if unknown:
        print(f"unknown default model(s): {sorted(unknown)}", file=sys.stderr)
        return 2
    for name in names:
        task, cfg = table[name]
        cfg.out = args.out
        r = task.run(cfg, Path(args.models), 1, args.overwrite, args.resume)
        if name in FP16_WEIGHTS:
            print(convert_committed(Path(args.models) / name))
        print(f"{name}: {task.summary(r)}", flush=True)
    return 0


def cmd_radar_samples(args: argparse.Namespace) -> int:
    """Example inputs for /nowcast: generated frames as ODIM HDF5 files (one per time) and one .npy."""
    from datetime import datetime, timedelta

    import numpy as np

    from modelrepo.radar_io import write_odim
    from training.data.radar import RadarParams, generate_sequence

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames = generate_sequence(args.seed, args.frames, RadarParams(size=args.size))
    t0 = datetime(2026, 7, 1, 12, 0)
    for i, f in enumerate(frames):
        t = t0 + timedelta(minutes=6 * i)
        write_odim(out / f"radar_{t:%Y%m%d%H%M}.h5", f, t)
    np.save(out / "frames.npy", frames)
    print(f"{len(frames)} ODIM files and frames.npy ({frames.shape}) in {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from training.eval_repo import evaluate_repository, remeasure_robustness, remeasure_segmentation

    if args.remeasure_robustness:
        for line in remeasure_robustness(Path(args.models)):
            print(f"card written: {line}")
    if args.remeasure_segmentation:
        for line in remeasure_segmentation(Path(args.models)):
            print(f"card written: {line}")
    results = evaluate_repository(Path(args.models), args.tolerance)
    if not results:
        print(f"no models under {args.models}", file=sys.stderr)
        return 1
    for r in results:
        print(f"{'OK  ' if r.ok else 'FAIL'} {r.name:24s} {r.message}")
    return 0 if all(r.ok for r in results) else 1


def cmd_fp16_weights(args: argparse.Namespace) -> int:
    from training.fp16_weights import convert_committed

    for d in args.model_dirs:
        print(convert_committed(Path(d)))
    return 0


def cmd_fp16_compute(args: argparse.Namespace) -> int:
    from training.fp16_compute import convert_to_fp16_compute

    for d in args.model_dirs:
        print(convert_to_fp16_compute(Path(d), Path(args.out), args.overwrite))
    return 0


def cmd_archs(args: argparse.Namespace) -> int:
    from training.nets import get_arch, list_archs

    for name in list_archs():
        a = get_arch(name)
        print(
            f"{name:12s} family={a.family:10s} presets={','.join(a.presets):15s} "
            f"torchvision={a.torchvision_name or '-'}"
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Robustness and generalisation tables (markdown) and plots (PNG) from the committed cards."""
    from training.reports import write_reports

    for p in write_reports(Path(args.models), Path(args.out)):
        print(p)
    return 0


def cmd_cell_samples(args: argparse.Namespace) -> int:
    """An example upload for /segment: a 16-bit TIFF from the evaluation-only generator (never trained on)."""
    import numpy as np
    import tifffile

    from training.data.cells_alt import alt_cell_image

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    c = alt_cell_image(rng, size=256)
    while c.image.dtype != np.uint16 or c.instances.max() < 20:  # a 16-bit one with enough cells
        c = alt_cell_image(rng, size=256)
    tifffile.imwrite(out / "cells_16bit.tif", c.image)
    tifffile.imwrite(out / "cells_16bit_truth.tif", c.instances.astype(np.uint16))
    composite_png(c.image, c.instances, out / "cells_composite.png")
    print(f"{out / 'cells_16bit.tif'} ({int(c.instances.max())} cells; truth labels beside it; cells_composite.png)")
    return 0


def composite_png(image, instances, path: Path) -> None:
    """The same cells as an 8-bit colour composite, as a microscope's software exports one: the cells in
    blue, a membrane stain (the cells' outlines, blurred) in green - for ``/segment?channel=blue``."""
    import numpy as np
    from PIL import Image
    from scipy import ndimage as ndi

    lo, hi = np.percentile(image, (1, 99.8))
    blue = np.clip((image - lo) / (hi - lo), 0, 1)
    edges = ndi.morphological_gradient(instances, size=3) > 0
    green = ndi.gaussian_filter(edges.astype(np.float64), 1.5)
    rgb = np.stack([np.zeros_like(blue), green / green.max(), blue], axis=-1)
    Image.fromarray((rgb * 255).round().astype(np.uint8)).save(path)


def cmd_digit_samples(args: argparse.Namespace) -> int:
    """Example uploads for /classify: pen-drawn digits as white-on-black, black-on-white and transparent PNGs."""
    from training.data.drawn_digits import write_examples

    for p in write_examples(Path(args.out)):
        print(p)
    return 0


def cmd_denoise_samples(args: argparse.Namespace) -> int:
    """Example uploads for /denoise: 256 px crops of held-out images with Gaussian noise, sigma 25."""
    from training.tasks.denoise_eval import write_examples

    for p in write_examples(Path(args.out)):
        print(p)
    return 0


def _add_task_parsers(sub) -> None:
    """One sub-command per training task, its flags from the task's config dataclass."""
    from training.tasks import TASKS

    for task in TASKS.values():
        p = sub.add_parser(task.command, help=task.help)
        _add_dataclass_args(p, task.config_class())
        _add_export_args(p)
        p.add_argument("--resume", action="store_true", help="continue from runs/<name>/last.pt (same config)")
        p.add_argument(
            "--budget-min", type=float, default=None, help="stop training after this many minutes (then --resume)"
        )
        p.add_argument(
            "--init-from",
            default=None,
            help="start a new run from a committed model's weights (models/<name> or a model.onnx; runs/ "
            "does not travel between machines, models/ does); not for graphs whose export folded batch norm",
        )
        p.set_defaults(fn=cmd_train)


def _add_fp16_parsers(sub) -> None:
    """The commands that rewrite committed model files in float16 (storage, or arithmetic for GPUs)."""
    p = sub.add_parser("fp16-weights", help="store committed models' weights as float16, in place (card updated)")
    p.add_argument("model_dirs", nargs="+", help="model folders, e.g. models/unet_cells")
    p.set_defaults(fn=cmd_fp16_weights)

    p = sub.add_parser("fp16-compute", help="write a float16-arithmetic copy <name>_fp16 of committed models (GPUs)")
    p.add_argument("model_dirs", nargs="+", help="model folders, e.g. models/resnet20_digits")
    p.add_argument("--out", default="models", help="model repository for the copies")
    p.add_argument("--overwrite", action="store_true", help="replace an existing <name>_fp16")
    p.set_defaults(fn=cmd_fp16_compute)


def _add_sample_parsers(sub) -> None:
    """The commands that write example uploads for the endpoints."""
    p = sub.add_parser("radar-samples", help="write example radar frames (ODIM HDF5 + .npy) for /nowcast")
    p.add_argument("--out", default="examples/radar")
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=2026)
    p.set_defaults(fn=cmd_radar_samples)

    p = sub.add_parser("cell-samples", help="write an example 16-bit cells TIFF for /segment")
    p.add_argument("--out", default="examples/cells")
    p.add_argument("--seed", type=int, default=2026)
    p.set_defaults(fn=cmd_cell_samples)

    p = sub.add_parser("digit-samples", help="write example digit uploads (PNG) for /classify")
    p.add_argument("--out", default="examples/digits")
    p.set_defaults(fn=cmd_digit_samples)

    p = sub.add_parser("denoise-samples", help="write example noisy images (PNG) for /denoise")
    p.add_argument("--out", default="examples/denoise")
    p.set_defaults(fn=cmd_denoise_samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)

    _add_task_parsers(sub)

    p = sub.add_parser("report", help="tables and plots for docs/ from the committed cards")
    p.add_argument("--models", default="models")
    p.add_argument("--out", default="docs")
    p.set_defaults(fn=cmd_report)

    _add_sample_parsers(sub)
    p = sub.add_parser("models", help="retrain and export every default model")
    p.add_argument("--models", default="models")
    p.add_argument("--out", default="runs")
    p.add_argument("--only", nargs="*", help="default model names to retrain")
    p.add_argument("--overwrite", action="store_true", help="replace the committed version 1")
    p.add_argument("--resume", action="store_true", help="classifiers: continue from runs/<name>/last.pt")
    p.set_defaults(fn=cmd_models)

    p = sub.add_parser("eval", help="re-evaluate the repository's ONNX models against their cards")
    p.add_argument("--models", default="models")
    p.add_argument("--tolerance", type=float, default=0.5, help="allowed drop in accuracy points")
    p.add_argument(
        "--remeasure-robustness",
        action="store_true",
        help="first measure the digits classifiers' robustness suite from their ONNX files and write it into "
        "their cards (a suite that gained variants), then evaluate as usual",
    )
    p.add_argument(
        "--remeasure-segmentation",
        action="store_true",
        help="first measure the segmenters' held-out sets from their ONNX files through the current served "
        "pipeline and write the figures into their cards (a pipeline change or a new set), then evaluate",
    )
    p.set_defaults(fn=cmd_eval)

    _add_fp16_parsers(sub)
    add_analysis_parsers(sub)

    p = sub.add_parser("archs", help="list the registered architectures")
    p.set_defaults(fn=cmd_archs)

    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
