"""A denoiser's geometric self-ensemble: its gain measured on the validation images, never the held-out ones.

The network runs on flipped / rotated copies of the image and the answers, turned back, are averaged
(``modelrepo.denoising.ENSEMBLES``); the card's ``input.ensemble`` is what the service and every evaluation
use by default. ``ensemble_gains`` measures each size on the validation images (``VALIDATION``, blind, every
test sigma), which is how the recipes' sizes were chosen; ``reensemble`` gives a committed denoiser another
size: the same weights, the held-out table measured again with it, exported with the new card.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from modelrepo.ensemble import ENSEMBLES
from modelrepo.repository import check_model_dir
from training.data.natural import VALIDATION, validation_images


def ensemble_gains(sess, spec, gray: bool, sizes=tuple(ENSEMBLES)) -> dict:
    """{"sizes", "psnr": mean validation PSNR per size, "gain_db": over size 1, "seconds": per image per size}."""
    from training.tasks.denoise_eval import SIGMAS, noisy_version, psnr, run_blind

    psnrs: dict[int, list[float]] = {k: [] for k in sizes}
    secs: dict[int, list[float]] = {k: [] for k in sizes}
    for clean in validation_images(gray):
        for sigma in SIGMAS:
            noisy = noisy_version(clean, sigma)
            for k in sizes:
                t0 = time.perf_counter()
                out = run_blind(sess, spec.model_copy(update={"ensemble": k}), noisy)[0]
                secs[k].append(time.perf_counter() - t0)
                psnrs[k].append(psnr(out, clean))
    mean = {k: round(float(np.mean(v)), 3) for k, v in psnrs.items()}
    return {
        "images": VALIDATION,
        "sigmas": list(SIGMAS),
        "sizes": list(sizes),
        "psnr": [mean[k] for k in sizes],
        "gain_db": [round(mean[k] - mean[sizes[0]], 3) for k in sizes],
        "seconds": [round(float(np.mean(secs[k])), 3) for k in sizes],
    }


def table(gains: dict) -> str:
    lines = ["| self-ensemble | validation PSNR (dB) | gain (dB) | seconds per image |", "|---|---|---|---|"]
    for k, p, g, s in zip(gains["sizes"], gains["psnr"], gains["gain_db"], gains["seconds"]):
        lines.append(f"| x{k} | {p:.3f} | {g:+.3f} | {s:.3f} |")
    return "\n".join(lines)


def _committed(model_dir: Path, ensemble: int, out: Path, refine_sigma: bool | None = None):
    """The committed denoiser's card, its run config with ``ensemble`` (and ``refine_sigma`` unless None:
    the card's) and the network with its weights."""
    from training.tasks.denoise import build_denoiser, config_from_card
    from training.warmstart import load_onnx_weights

    entry = check_model_dir(Path(model_dir))
    if not entry.ok or entry.card is None or entry.card.task != "denoising":
        raise ValueError(f"{model_dir} is not a denoiser's model folder: {'; '.join(entry.problems)}")
    if ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {sorted(ENSEMBLES)}")
    cfg = replace(config_from_card(entry.card), ensemble=ensemble, out=str(out))
    cfg = cfg if refine_sigma is None else replace(cfg, refine_sigma=refine_sigma)
    net = build_denoiser(cfg)
    load_onnx_weights(net, Path(model_dir))
    return entry.card, cfg, net.eval()


def _training_record(card, gains: dict, rows: list[dict], out_dir: Path) -> dict:
    """What ``export_denoiser`` needs of a training run, from the committed card (unchanged)."""
    hp = card.hyperparameters
    return {
        "train_seconds": hp["train_seconds"],
        "steps_done": hp["steps_done"],
        "initialised_from": hp.get("initialised_from"),
        "val_psnr": hp["val_psnr"],
        "training_mix": {
            "natural_images": card.training.sizes["train_natural_images"],
            "dead_leaves_images": card.training.sizes["train_dead_leaves_images"],
        },
        "ensemble_validation": gains,
        "rows": rows,
        "out_dir": str(out_dir),
    }


def reensemble(
    model_dir: Path,
    ensemble: int,
    out: Path,
    export_to: Path | None = None,
    version: int | None = None,
    overwrite: bool = False,
    refine_sigma: bool | None = None,
) -> dict:
    """A committed denoiser (its card's config, the ONNX graph's weights) served with ``ensemble`` passes:
    validation gains of every size, the held-out table again (reports in ``out/<name>_ensemble``), optionally
    exported. Its training record (steps, hours, validation PSNR) is the card's, unchanged."""
    from training.loop import Run
    from training.tasks.denoise import export_denoiser, held_out_report, textbook_ae, training_data

    card, cfg, net = _committed(model_dir, ensemble, out, refine_sigma)
    out_dir = Path(out) / f"{cfg.name}_ensemble"
    out_dir.mkdir(parents=True, exist_ok=True)
    ae, _ = textbook_ae(cfg, *training_data(cfg, Run()), Run())  # the reference row, retrained as in every run
    head = (
        f"`{cfg.name}` served with a x{ensemble} self-ensemble (`training denoise-ensemble`, same weights; the "
        "textbook autoencoder retrained for the reference row).\n\n"
    )
    rows, gains, refine = held_out_report(cfg, net, ae, out_dir, head)
    result = _training_record(card, gains, rows, out_dir) | {"noise_refine": refine}
    if export_to is not None:
        exported = export_denoiser(net, cfg, rows, result, Path(export_to), version, overwrite)
        result["exported"] = str(Path(export_to) / exported.name)
    return result
