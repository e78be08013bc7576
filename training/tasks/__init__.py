"""The table of training tasks that the command line is driven by: one entry per task, one command
function and one ``models`` loop for all of them (``training/__main__.py``)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def _classify_line(r: dict) -> str:
    from training.robustness import worst_variant

    robust = r.get("robustness")
    worst = f"{worst_variant(robust)} {100 * robust[worst_variant(robust)]:.2f} %" if robust else "-"
    size = f", {r['onnx_bytes'] / 1e6:.2f} MB" if "onnx_bytes" in r else ""
    return (
        f"test accuracy {100 * r['test_accuracy']:.2f} %, worst counted robustness variant {worst}"
        f"{size}, {r['train_seconds']:.0f} s"
    )


def _segment_line(r: dict) -> str:
    s = r["scores"]
    cross = f", independent generator {s['cross'][r['instances']]['f1']:.3f}" if "cross" in s else ""
    return f"object F1 {r['object_f1']:.3f} (baseline {r['baseline_object_f1']:.3f}){cross}; panel {r['panel']}"


def _denoise_line(r: dict) -> str:
    from training.tasks.denoise_eval import summary_table

    trained = f"validation PSNR {r['val_psnr']:.2f} dB after {r['steps_done']} steps, {r['train_seconds']:.0f} s"
    if "rows" not in r:
        return trained + " (not evaluated: --no-evaluate)"
    return f"{trained}\n{summary_table(r['rows'])}\npanel {r['panel']}"


def _nowcast_line(r: dict) -> str:
    from training.tasks.nowcast_verify import table

    targets = json.dumps(r["verification"]["targets"], indent=2)
    return f"\n{table(r['verification'])}\n{targets}\nplots {r['scores_plot']} {r['case_plot']}"


@dataclass(frozen=True)
class TaskEntry:
    command: str
    help: str
    module: str  # holds the config dataclass and the train function
    config: str
    train: str
    defaults: str  # the dict of default models in training.defaults
    summary: Callable[[dict], str]

    def config_class(self):
        return getattr(importlib.import_module(self.module), self.config)

    def run(
        self,
        cfg,
        export_to: Path | None,
        version: int | None,
        overwrite: bool,
        resume: bool,
        budget_s: float | None = None,
        init_from: Path | None = None,
    ) -> dict:
        from training.loop import Run

        train = getattr(importlib.import_module(self.module), self.train)
        return train(cfg, run=Run(export_to, version, overwrite, resume=resume, budget_s=budget_s, init_from=init_from))

    def default_models(self) -> dict:
        return getattr(importlib.import_module("training.defaults"), self.defaults)


TASKS = {
    t.command: t
    for t in [
        TaskEntry(
            "classify", "train one classifier (and export it with --export-to)", "training.tasks.classify",
            "ClassifyConfig", "train_classifier", "DEFAULT_CLASSIFIERS", _classify_line,
        ),
        TaskEntry(
            "segment", "train the segmentation U-Net on generated cells", "training.tasks.segment",
            "SegmentConfig", "train_segmenter", "DEFAULT_SEGMENTERS", _segment_line,
        ),
        TaskEntry(
            "denoise", "train the denoising autoencoders on bundled natural images", "training.tasks.denoise",
            "DenoiseConfig", "train_denoiser", "DEFAULT_DENOISERS", _denoise_line,
        ),
        TaskEntry(
            "nowcast", "train the radar nowcaster on generated radar sequences", "training.tasks.nowcast",
            "NowcastConfig", "train_nowcaster", "DEFAULT_NOWCASTERS", _nowcast_line,
        ),
    ]
}  # fmt: skip
