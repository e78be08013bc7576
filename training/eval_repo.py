"""Re-evaluate the committed ONNX models with ONNX Runtime and compare with their cards."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from modelrepo.preprocess import preprocess
from modelrepo.repository import CARD_FILE, ModelEntry, scan_repository
from training.data import load_splits
from training.robustness import worst_variant

TOLERANCE_POINTS = 0.5  # a re-measured accuracy may fall at most this many points below the card


@dataclass
class EvalResult:
    name: str
    claimed: float | None  # the card's headline metric (accuracy, or object F1 for segmentation)
    measured: float | None  # the same metric re-measured from the ONNX file
    ok: bool
    message: str


def _dataset_for(entry: ModelEntry):
    card = entry.card
    assert card is not None
    src = card.training.source
    if src == "sklearn.datasets.load_digits":
        return load_splits("digits", seed=card.training.seed)
    if src.startswith("folder:") and Path(src[len("folder:") :]).is_dir():
        return load_splits("folder", src[len("folder:") :], seed=card.training.seed, color_mode=card.input.color_mode)
    return None


def evaluate_entry(entry: ModelEntry, tolerance: float = TOLERANCE_POINTS) -> EvalResult:
    if not entry.ok:
        return EvalResult(entry.name, None, None, False, "; ".join(entry.problems))
    card = entry.card
    assert card is not None
    if card.task == "segmentation":
        return evaluate_segmentation(entry)
    if card.task == "denoising":
        return evaluate_denoising(entry)
    if card.task == "nowcasting":
        return evaluate_nowcasting(entry)
    if card.task != "classification":
        return EvalResult(entry.name, None, None, True, f"skipped: no re-evaluation for task {card.task} yet")
    splits = _dataset_for(entry)
    if splits is None:
        return EvalResult(
            entry.name,
            card.metrics.get("accuracy"),
            None,
            False,
            f"data source {card.training.source} is not available here",
        )
    if splits.sizes != card.training.sizes:
        return EvalResult(
            entry.name,
            card.metrics.get("accuracy"),
            None,
            False,
            f"split sizes {splits.sizes} differ from the card's {card.training.sizes}",
        )
    logits_of = _logits_of(entry)
    acc = float((logits_of(preprocess(splits.test.images, card.input)).argmax(1) == splits.test.labels).mean())
    claimed = card.metrics["accuracy"]
    ok = 100 * acc >= 100 * claimed - tolerance
    msg = f"{100 * acc:.2f} % vs card {100 * claimed:.2f} %" + ("" if ok else f" (more than {tolerance} points below)")
    if card.robustness:
        ok_r, msg_r = _check_robustness(card, logits_of, splits, tolerance)
        ok, msg = ok and ok_r, f"{msg}; {msg_r}"
    return EvalResult(entry.name, claimed, acc, ok, msg)


def _logits_of(entry: ModelEntry):
    """A classifier's ONNX file as a callable from an input batch to logits (in chunks of 128)."""
    sess = ort.InferenceSession(str(entry.version_path()), providers=["CPUExecutionProvider"])
    name = entry.card.input.name

    def logits_of(x: np.ndarray) -> np.ndarray:
        return np.concatenate([sess.run(None, {name: x[i : i + 128]})[0] for i in range(0, len(x), 128)])

    return logits_of


def _check_robustness(card, logits_of, splits, tolerance: float) -> tuple[bool, str]:
    """Re-measure every robustness variant through the service's decoding and framing; each may fall
    at most ``tolerance`` points below the card."""
    from training.robustness import measure

    measured = measure(logits_of, card.input, splits.test.images, splits.test.labels)
    low = {k: v for k, v in measured.items() if 100 * v < 100 * card.robustness.get(k, 0.0) - tolerance}
    missing = sorted(set(card.robustness) - set(measured))
    unrecorded = sorted(set(measured) - set(card.robustness))
    worst = worst_variant(measured)
    msg = f"worst variant {worst} {100 * measured[worst]:.2f} %"
    if low:
        msg += "; below the card: " + ", ".join(
            f"{k} {100 * v:.2f} % (card {100 * card.robustness[k]:.2f})" for k, v in low.items()
        )
    if missing:
        msg += f"; variants not measured here: {missing}"
    if unrecorded:
        msg += f"; variants the card lacks (python -m training eval --remeasure-robustness): {unrecorded}"
    return not low and not missing and not unrecorded, msg


def remeasure_robustness(root: Path) -> list[str]:
    """Measure the robustness suite of every digits classifier from its ONNX file and write the figures
    (and ``robust_accuracy``) into its card: for a suite that gained variants, without retraining.
    Returns one line per card written."""
    from training.robustness import HEADLINE, headline, measure

    lines = []
    for entry in scan_repository(root):
        card, splits = entry.card, _dataset_for(entry) if entry.ok else None
        if card is None or card.robustness is None or splits is None:
            continue
        measured = measure(_logits_of(entry), card.input, splits.test.images, splits.test.labels)
        metrics = card.metrics | {HEADLINE: headline(measured)}
        card.model_copy(update={"robustness": measured, "metrics": metrics}).dump(entry.path / CARD_FILE)
        lines.append(f"{entry.name}: {HEADLINE} {100 * metrics[HEADLINE]:.2f} %")
    return lines


def evaluate_repository(root: Path, tolerance: float = TOLERANCE_POINTS) -> list[EvalResult]:
    return [evaluate_entry(e, tolerance) for e in scan_repository(root)]


F1_TOLERANCE = 0.01  # a re-measured object F1 may fall at most this much below the card


def segmenter(entry: ModelEntry):
    """A segmenter's training configuration rebuilt from its card and its ONNX file as a callable from an
    input batch to logits: (config, logits_of), or why its data cannot be regenerated here."""
    from dataclasses import fields

    from training.tasks.segment import SOURCES, SegmentConfig, data_source

    card = entry.card
    assert card is not None
    known = {f.name for f in fields(SegmentConfig)}
    cfg = SegmentConfig(**{k: v for k, v in card.hyperparameters.items() if k in known})
    if "data" not in card.hyperparameters:  # cards from before the data field: the source names it
        cfg.data = next((k for k, v in SOURCES.items() if v == card.training.source), "folder")
    if cfg.data == "folder" and card.training.source.startswith("folder:"):
        cfg.data_dir = card.training.source[len("folder:") :]
    if data_source(cfg) != card.training.source or (cfg.data == "folder" and not Path(cfg.data_dir).is_dir()):
        return f"data source {card.training.source} is not available here"
    sess = ort.InferenceSession(str(entry.version_path()), providers=["CPUExecutionProvider"])

    def logits_of(x: np.ndarray) -> np.ndarray:
        return sess.run(None, {card.input.name: x})[0]

    return cfg, logits_of


def load_segmenter(entry: ModelEntry):
    """``segmenter``, raising ValueError (with the model's folder) where its data cannot be regenerated here."""
    found = segmenter(entry)
    if isinstance(found, str):
        raise ValueError(f"{entry.path}: {found}")
    return found


def measure_segmentation(entry: ModelEntry) -> dict[str, float] | str:
    """Regenerate the card's held-out sets (own, first generator, independent generator, magnified), run
    the ONNX file through the served pipeline (``modelrepo/cellseg.py``: diameter, rescale, instance
    method) and measure every card metric (both instance methods, the baseline, the true diameter given);
    or why it cannot."""
    from training.tasks.segment import held_out_only
    from training.tasks.segment_eval import card_metrics, score_sets

    found = segmenter(entry)
    if isinstance(found, str):
        return found
    cfg, logits_of = found
    card = entry.card
    sets = held_out_only(cfg)
    return card_metrics(score_sets(logits_of, sets, card.input, card.output), card.output.instances)


def evaluate_segmentation(entry: ModelEntry) -> EvalResult:
    """Every object F1 the card holds, re-measured (``measure_segmentation``)."""
    card = entry.card
    assert card is not None
    headline = card.headline_metric or "object_f1"
    claimed = card.metrics.get(headline)
    measured = measure_segmentation(entry)
    if isinstance(measured, str):
        return EvalResult(entry.name, claimed, None, False, measured)
    checked = {k: v for k, v in measured.items() if "f1" in k and k in card.metrics}
    low = {k: v for k, v in checked.items() if v < card.metrics[k] - F1_TOLERANCE}
    value = measured.get(headline)
    msg = f"{headline} {value:.4f} vs card {claimed:.4f}; {len(checked)} F1 figures re-measured"
    if low:
        msg += "; below the card: " + ", ".join(f"{k} {v:.4f} (card {card.metrics[k]:.4f})" for k, v in low.items())
    return EvalResult(entry.name, claimed, value, claimed is not None and not low, msg)


def remeasure_segmentation(root: Path) -> list[str]:
    """Measure every segmenter's held-out sets from its ONNX file through today's served pipeline and write
    the figures into its card (a pipeline change or a new held-out set, without retraining). One line per
    card written."""
    lines = []
    for entry in scan_repository(root):
        if entry.card is None or entry.card.task != "segmentation" or not entry.ok:
            continue
        measured = measure_segmentation(entry)
        if isinstance(measured, str):
            lines.append(f"{entry.name}: not measured ({measured})")
            continue
        entry.card.model_copy(update={"metrics": entry.card.metrics | measured}).dump(entry.path / CARD_FILE)
        figures = ", ".join(f"{k} {v:.4f}" for k, v in measured.items() if k.endswith("object_f1"))
        lines.append(f"{entry.name}: {figures}")
    return lines


PSNR_TOLERANCE = 0.1  # dB


def evaluate_denoising(entry: ModelEntry) -> EvalResult:
    """Re-measure every PSNR of the model on the card (each held-out image and sigma, blind and with the
    true sigma) from the ONNX file, through the service's tiled path."""
    from training.data.natural import test_images
    from training.tasks.denoise_eval import SIGMAS, noisy_version, psnr, run_blind, run_session

    card = entry.card
    assert card is not None
    head = card.headline_metric or "psnr_camera_s25_model"
    if head not in card.metrics:
        return EvalResult(entry.name, None, None, False, f"the card has no {head} metric")
    images = test_images(card.input.channels == 1, second_set=True)
    sess = ort.InferenceSession(str(entry.version_path()), providers=["CPUExecutionProvider"])
    measured, worse = {}, []
    for name, clean in images.items():
        for sigma in SIGMAS:
            noisy = noisy_version(clean, sigma)
            for suffix in ("model", "model_true_sigma"):  # blind as served, and told the true sigma
                key = f"psnr_{name}_s{sigma}_{suffix}"
                if key in card.metrics:
                    if suffix == "model":
                        out = run_blind(sess, card.input, noisy)[0]
                    else:
                        out = run_session(sess, card.input, noisy, sigma)
                    measured[key] = psnr(out, clean)
                    if measured[key] < card.metrics[key] - PSNR_TOLERANCE:
                        worse.append(f"{key} {measured[key]:.2f} (card {card.metrics[key]:.2f})")
    claimed, got = card.metrics[head], measured.get(head)
    msg = f"{len(measured)} PSNR figures re-measured; {head} {got:.2f} dB vs card {claimed:.2f} dB"
    if worse:
        msg += "; below the card: " + ", ".join(worse)
    return EvalResult(entry.name, claimed, got, not worse and got is not None, msg)


NOWCAST_TOLERANCE = {"mae_dbz": 0.05, "csi": 0.01, "fss": 0.01}  # re-measured may be this much worse


def evaluate_nowcasting(entry: ModelEntry) -> EvalResult:
    """Regenerate the card's held-out radar sequences, roll the ONNX model out with ONNX Runtime, verify on
    the same pixels as in training (where the Lucas-Kanade extrapolation has values), compare with the card."""
    from training.tasks.nowcast import TEST_SEED0, config_from_card, generated
    from training.tasks.nowcast_export import card_metrics
    from training.tasks.nowcast_verify import forecast_lk, forecast_onnx, verify

    card = entry.card
    assert card is not None and card.radar is not None
    if card.training.source != "generated:radar":
        return EvalResult(entry.name, None, None, False, f"data source {card.training.source} is not available here")
    cfg = config_from_card(card)
    spec = card.radar
    test = generated(
        range(TEST_SEED0, TEST_SEED0 + cfg.n_test), spec.frames_in + spec.max_steps, cfg.test_size, 2, "test"
    )
    obs, truth = test[:, : spec.frames_in], test[:, spec.frames_in :]
    ours = forecast_onnx(card, entry.version_path(), obs, spec.max_steps)
    mask = np.isfinite(forecast_lk(obs, spec.max_steps, spec))
    measured = card_metrics(
        {"lead_minutes": card.verification["lead_minutes"], "methods": verify(truth, {card.name: ours}, mask)},
        card.name,
    )
    worse = []
    for k, claimed_v in card.metrics.items():
        got = measured.get(k)
        tol = next(t for prefix, t in NOWCAST_TOLERANCE.items() if k.startswith(prefix))
        bad = got is None or (got > claimed_v + tol if k.startswith("mae") else got < claimed_v - tol)
        if bad:
            worse.append(f"{k} {got} vs card {claimed_v}")
    head = "mae_dbz_60min"
    got, claimed = measured.get(head, float("nan")), card.metrics.get(head, float("nan"))
    msg = f"{len(card.metrics)} scores on {len(test)} sequences; MAE 60 min {got:.3f} vs card {claimed:.3f} dBZ"
    if worse:
        msg += "; worse: " + ", ".join(worse)
    return EvalResult(entry.name, card.metrics.get(head), measured.get(head), not worse, msg)
