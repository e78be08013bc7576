"""The blind noise level, refined by the denoiser itself: chosen on training images, checked on validation ones.

The service's wavelet estimate (``modelrepo.noise.estimate_sigma``) reads texture as noise: on the training
image ``grass`` at sigma 5 it says 13, at 15 it says 20, and the network, told so, smooths the grass away.
What the network removes at the estimated level (``modelrepo.denoising.residual_level``: a few sample tiles,
one pass) is mostly the noise - about 0.96-0.99 of it on smooth images, where a little noise stays in. So the
served level is the estimate or the residual divided by that share, whichever is lower
(``modelrepo.denoising.blind_level``). The share is chosen here by the mean PSNR it gives on the training
images at every ``FIT_SIGMAS`` level (one pass each), and checked on the validation images; the held-out
images never enter it. (Tried first on the gray model, 2026-12-07: a least-squares blend a x estimate +
b x residual fitted well at sigma 15-50 but not from 5 up - it made the validation images' level worse,
0.008 -> 0.021 mean relative error; repeating the residual step drifts low on texture, 0.05 / 0.10 / 0.16
after 1 / 2 / 3 steps.)
"""

from __future__ import annotations

import asyncio

import numpy as np

from modelrepo.card import InputSpec
from modelrepo.denoising import OVERLAP, TILE, denoise, residual_level
from modelrepo.noise import estimate_sigma
from training.data.natural import (
    SKLEARN_TRAIN,
    TRAIN_NAMES,
    VALIDATION,
    _centre,
    training_images,
    validation_images,
)

FIT_SIGMAS = (5, 10, 15, 25, 35, 50)  # 0-255 scale: the served range, beyond the evaluation's 15 / 25 / 50
SHARES = (0.92, 0.94, 0.96, 0.98, 1.0)  # candidate shares of the noise the network removes


def _cases(images: list[np.ndarray], seed: int):
    """(sigma, clean, noisy) for each image's central 512 px at every ``FIT_SIGMAS`` level, as (H, W, C)."""
    for i, im in enumerate(images):
        clean = _centre(im)
        clean = clean[..., None] if clean.ndim == 2 else clean
        for sigma in FIT_SIGMAS:
            rng = np.random.default_rng(seed + 100 * i + sigma)
            yield sigma, clean, (clean + rng.normal(0, sigma / 255, clean.shape)).astype(np.float32)


def psnr_by_rule(sess, spec: InputSpec, images: list[np.ndarray], seed: int, shares=SHARES) -> dict:
    """Mean PSNR (one pass) at the estimate, at the true level and refined with each share; the mean relative
    error of the estimate and of each refined level."""
    from training.tasks.denoise_eval import psnr, session_infer

    infer = session_infer(sess)

    def run(noisy: np.ndarray, level: float) -> np.ndarray:
        return asyncio.run(denoise(infer, noisy, spec, level, TILE, OVERLAP, ensemble=1))

    rules = ["estimate", "true sigma", *(f"share {c}" for c in shares)]
    scores: dict[str, list[float]] = {r: [] for r in rules}
    errors: dict[str, list[float]] = {r: [] for r in rules if r != "true sigma"}
    for sigma, clean, noisy in _cases(images, seed):
        est = estimate_sigma(noisy) * 255
        res = asyncio.run(residual_level(infer, noisy, spec, est))
        levels = {"estimate": est, "true sigma": float(sigma)} | {f"share {c}": min(est, res / c) for c in shares}
        for rule, level in levels.items():
            scores[rule].append(psnr(run(noisy, level), clean))
            if rule in errors:
                errors[rule].append(abs(level / sigma - 1))
    return {
        "psnr": {r: round(float(np.mean(v)), 3) for r, v in scores.items()},
        "relative_error": {r: round(float(np.mean(v)), 4) for r, v in errors.items()},
    }


def refine_fit(sess, spec: InputSpec, gray: bool) -> dict:
    """The share with the best mean training PSNR, and every rule's figures on the training and the
    validation images (never the held-out ones)."""
    train = psnr_by_rule(sess, spec, training_images(gray), seed=5000)
    share = max(SHARES, key=lambda c: train["psnr"][f"share {c}"])
    val = psnr_by_rule(sess, spec, validation_images(gray), seed=6000, shares=(share,))
    return {
        "share": share,
        "fitted_on": TRAIN_NAMES + SKLEARN_TRAIN,
        "checked_on": VALIDATION,
        "sigmas": list(FIT_SIGMAS),
        "training": train,
        "validation": val,
    }


def refine_note(refine: dict | None) -> str:
    """A paragraph for the results page: the share chosen and what it did on training and validation images."""
    if not refine:
        return ""
    c = refine["share"]
    lines = [
        f"\nBlind level refined by the network's residual (share {c}, chosen on the training images; "
        f"sigma {', '.join(map(str, refine['sigmas']))}, one pass):\n",
        "| images | PSNR at the estimate | refined | at the true sigma | level error, estimate -> refined |",
        "|---|---|---|---|---|",
    ]
    for name in ("training", "validation"):
        p, e = refine[name]["psnr"], refine[name]["relative_error"]
        lines.append(
            f"| {name} | {p['estimate']:.3f} | {p[f'share {c}']:.3f} | {p['true sigma']:.3f} | "
            f"{e['estimate']:.3f} -> {e[f'share {c}']:.3f} |"
        )
    return "\n".join(lines) + "\n"
