"""``python -m training`` commands that analyse or re-card committed models: the nowcaster's ablation,
time steps and rain decision, a segmenter's natively segmented sizes, a denoiser's self-ensemble."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cmd_nowcast_ablation(args: argparse.Namespace) -> int:
    """A Lagrangian nowcaster with its learned parts switched off, per regime, against pysteps' LK."""
    from training.nowcast_ablation import ablation, table

    leads = tuple(args.leads)
    print(table(ablation(Path(args.model), args.n, args.size, leads), leads))
    return 0


def cmd_nowcast_timesteps(args: argparse.Namespace) -> int:
    """A Lagrangian nowcaster on frames at other spacings than it was trained on, against LK and persistence."""
    from modelrepo.card import ModelCard
    from modelrepo.repository import CARD_FILE
    from training.nowcast_timesteps import measure, step_range, table, write_card

    scores = measure(Path(args.model), args.n)
    trained = ModelCard.load(Path(args.model) / CARD_FILE).radar.timestep_minutes
    print(table(scores))
    print(f"accepted range: {step_range(scores, trained)} (steps in minutes)")
    if args.write_card:
        print(f"card written: timestep_range_minutes = {write_card(Path(args.model), scores)}")
    return 0


def cmd_nowcast_calibrate(args: argparse.Namespace) -> int:
    """A committed nowcaster's rain decision value chosen again on validation, verified, optionally exported."""
    from training.nowcast_calibrate import recalibrate, settings_table, table

    export_to = Path(args.export_to) if args.export_to else None
    r = recalibrate(Path(args.model), Path(args.out), export_to, args.version, args.overwrite, args.evolution)
    if args.evolution and "served_settings" in r["verification"]:
        print(settings_table(r["verification"]["served_settings"]))
    print(table(r["verification"]["rain_decision"]))
    print(json.dumps({k: v for k, v in r.items() if k != "verification"}, indent=2, default=str))
    return 0


def cmd_segment_calibrate(args: argparse.Namespace) -> int:
    """A committed segmenter's natively segmented cell sizes chosen on validation; card re-measured."""
    from training.seg_calibrate import recalibrate

    text, metrics = recalibrate(Path(args.model), Path(args.report) if args.report else None)
    print(text)
    print(json.dumps({k: v for k, v in metrics.items() if "f1" in k}, indent=2))
    return 0


def cmd_segment_compare(args: argparse.Namespace) -> int:
    """Two exported segmenters on the same held-out images: object F1 difference with a paired bootstrap."""
    from training.seg_compare import compare, markdown

    print(markdown(compare(Path(args.a), Path(args.b), args.boot), args.a, args.b))
    return 0


def cmd_segment_merges(args: argparse.Namespace) -> int:
    """Which touching true cells an exported segmenter merges, by contrast and size, on one held-out set."""
    from training.seg_merges import markdown, merges

    print(markdown(merges(Path(args.model), args.set)))
    return 0


def cmd_denoise_ensemble(args: argparse.Namespace) -> int:
    """A committed denoiser served with another self-ensemble size: validation gains, held-out table, export."""
    from training.denoise_ensemble import reensemble, table

    export_to = Path(args.export_to) if args.export_to else None
    r = reensemble(
        Path(args.model), args.ensemble, Path(args.out), export_to, args.version, args.overwrite, args.refine_sigma
    )
    print(table(r["ensemble_validation"]))
    print(json.dumps({k: v for k, v in r.items() if k not in ("rows", "ensemble_validation")}, indent=2, default=str))
    return 0


def cmd_denoise_jpeg(args: argparse.Namespace) -> int:
    """Noisy held-out images saved as JPEG through the committed denoisers: per-plane vs JPEG noise measure."""
    from training.denoise_jpeg import report

    print(report(Path(args.models), Path(args.out)))
    return 0


def cmd_denoise_camera(args: argparse.Namespace) -> int:
    """Simulated camera noise through the committed colour denoiser, with and without pd=true."""
    from training.denoise_camera import report

    print(report(Path(args.models), Path(args.out)))
    return 0


def add_analysis_parsers(sub) -> None:
    """Diagnostics of committed models (they write nothing), the recalibration of a nowcaster and a
    denoiser's self-ensemble."""
    p = sub.add_parser(
        "nowcast-ablation", help="a Lagrangian nowcaster's MAE per regime with its learned parts switched off"
    )
    p.add_argument("model", nargs="?", default="models/lagrangian_nowcast", help="model folder")
    p.add_argument("--n", type=int, default=8, help="validation sequences per regime")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--leads", type=int, nargs="+", default=[1, 5, 10], help="leads, in 6-minute steps")
    p.set_defaults(fn=cmd_nowcast_ablation)
    p = sub.add_parser(
        "nowcast-timesteps", help="a Lagrangian nowcaster on frames 4-10 minutes apart, against LK and persistence"
    )
    p.add_argument("model", nargs="?", default="models/lagrangian_nowcast", help="model folder")
    p.add_argument("--n", type=int, default=12, help="sequences per regime and step")
    p.add_argument("--write-card", action="store_true", help="record the accepted range and the table in the card")
    p.set_defaults(fn=cmd_nowcast_timesteps)
    p = sub.add_parser(
        "nowcast-calibrate",
        help="choose a committed nowcaster's rain decision value on validation, verify it, optionally export it",
    )
    p.add_argument("model", nargs="?", default="models/lagrangian_nowcast", help="model folder")
    p.add_argument("--out", default="runs", help="reports go to OUT/<name>_calibrated")
    p.add_argument("--export-to", default=None, help="model repository to export into, e.g. models")
    p.add_argument("--version", type=int, default=None)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument(
        "--evolution",
        action="store_true",
        help="a Lagrangian model: choose its flow smoothing and evolution gain with the rain decision value",
    )
    p.set_defaults(fn=cmd_nowcast_calibrate)
    _add_recard_parsers(sub)


def _add_recard_parsers(sub) -> None:
    """Commands that choose a committed segmenter's or denoiser's serving settings and re-measure its card,
    and the denoiser's upload reports."""
    p = sub.add_parser(
        "segment-calibrate",
        help="choose which cell sizes a committed segmenter sees at their own size (validation); re-measure its card",
    )
    p.add_argument("model", nargs="?", default="models/unet_cells", help="model folder")
    p.add_argument("--report", default=None, help="also write the validation table here (markdown)")
    p.set_defaults(fn=cmd_segment_calibrate)
    p = sub.add_parser(
        "segment-compare",
        help="two exported segmenters on the same held-out images: F1 difference, paired bootstrap 95 % interval",
    )
    for name, what in (("a", "the reference: its card's held-out sets are used"), ("b", "the candidate")):
        p.add_argument(name, help=f"model folder, {what}")
    p.add_argument("--boot", type=int, default=2000, help="bootstrap resamples of the images")
    p.set_defaults(fn=cmd_segment_compare)
    p = sub.add_parser("segment-merges", help="which touching cells a segmenter merges, by contrast and cell size")
    p.add_argument("model", nargs="?", default="models/unet_cells", help="model folder")
    p.add_argument("--set", default="cross", choices=("own", "first", "cross", "cross_x2"), help="held-out set")
    p.set_defaults(fn=cmd_segment_merges)
    p = sub.add_parser(
        "denoise-ensemble",
        help="serve a committed denoiser with a self-ensemble size: validation gains, held-out table, optional export",
    )
    p.add_argument("model", help="model folder, e.g. models/unet_denoise_gray")
    p.add_argument("--ensemble", type=int, choices=(1, 2, 4, 8), required=True, help="flipped / rotated passes")
    p.add_argument(
        "--refine-sigma",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="blind level refined by the network's residual, fitted on training images (default: as the card)",
    )
    p.add_argument("--out", default="runs", help="reports go to OUT/<name>_ensemble")
    p.add_argument("--export-to", default=None, help="model repository to export into, e.g. models")
    p.add_argument("--version", type=int, default=None)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(fn=cmd_denoise_ensemble)
    p = sub.add_parser(
        "denoise-jpeg", help="noisy held-out images saved as JPEG through the committed denoisers (docs table)"
    )
    p.add_argument("--models", default="models", help="model repository")
    p.add_argument("--out", default="docs", help="writes OUT/denoise_jpeg.md and .png")
    p.set_defaults(fn=cmd_denoise_jpeg)
    p = sub.add_parser("denoise-camera", help="simulated camera noise through the colour denoiser, pd=true or not")
    p.add_argument("--models", default="models", help="model repository")
    p.add_argument("--out", default="docs", help="writes OUT/denoise_camera.md and .png")
    p.set_defaults(fn=cmd_denoise_camera)
