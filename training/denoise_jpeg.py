"""Noisy photos as users send them - JPEG files - through the committed denoisers, blind.

Each held-out image (``training.data.natural.test_images``, the denoisers' cards' sets) gets Gaussian
noise (the evaluation's realisation), is saved as a JPEG with 4:2:0 chroma (what Pillow, phones and
cameras write) at quality 75 (Pillow's default) and 95, decoded, and denoised three ways: at the level
measured per colour plane on the finest diagonal details (the service's estimate for every format until
2026-12-06), at the level measured as JPEG keeps its noise (``modelrepo.noise``, ``lossy=True``: what the
service now does for JPEG uploads) and at the true level. PSNR against the clean image.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from modelrepo.noise import estimate_sigma

QUALITIES = (75, 95)
SIGMAS = (5, 10, 15, 25, 50)  # the cards' 15 / 25 / 50 and the low levels where quantisation bites
LEVELS = ("per plane", "as JPEG", "true")
MODELS = ("unet_denoise_gray", "unet_denoise_rgb")


def through_jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    """A float image in [0, 1] (noise and all) saved as an 8-bit 4:2:0 JPEG and decoded -> float32."""
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.round(x * 255), 0, 255).astype(np.uint8)).save(
        buf, "JPEG", quality=quality, subsampling=2
    )
    return np.asarray(Image.open(buf), np.float32) / 255


def measure(models: Path, progress: bool = True, limit: int | None = None, sigmas=SIGMAS) -> list[dict]:
    """One row per model, image, sigma and quality: the levels used and the PSNR at each (``limit``: the
    first images only)."""
    import onnxruntime as ort
    from tqdm import tqdm

    from modelrepo.repository import check_model_dir
    from training.data.natural import test_images
    from training.tasks.denoise_eval import noisy_version, psnr, run_session

    rows = []
    for name in MODELS:
        entry = check_model_dir(models / name)
        if not entry.ok or entry.card is None:
            raise ValueError(f"{models / name}: {'; '.join(entry.problems)}")
        sess = ort.InferenceSession(str(entry.version_path()), providers=["CPUExecutionProvider"])
        images = test_images(entry.card.input.channels == 1, second_set=True)
        cases = [(i, s, q) for i in list(images)[:limit] for s in sigmas for q in QUALITIES]
        for image, sigma, quality in tqdm(cases, desc=name, disable=not progress):
            clean = images[image]
            upload = through_jpeg(noisy_version(clean, sigma), quality)
            levels = dict(zip(LEVELS, (estimate_sigma(upload) * 255, estimate_sigma(upload, lossy=True) * 255, sigma)))
            row = {"model": name, "image": image, "sigma": sigma, "quality": quality, "upload": psnr(upload, clean)}
            for how, level in levels.items():
                row[how] = {
                    "level": round(float(level), 2),
                    "psnr": psnr(run_session(sess, entry.card.input, upload, level), clean),
                }
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """Mean PSNR (dB) per model, quality and sigma; the level used in brackets, as a share of the true one."""

    lines = [
        "| model | JPEG quality | sigma | upload | per plane | as JPEG (served) | true sigma |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in MODELS:
        for quality in QUALITIES:
            for sigma in SIGMAS:
                sel = [r for r in rows if r["model"] == name and r["quality"] == quality and r["sigma"] == sigma]
                if not sel:
                    continue
                cells = [f"{np.mean([r['upload'] for r in sel]):.2f}"]
                for how in LEVELS:
                    share = np.mean([r[how]["level"] for r in sel]) / sigma
                    cells.append(f"{np.mean([r[how]['psnr'] for r in sel]):.2f} (x{share:.2f})")
                lines.append(f"| {name} ({len(sel)} images) | {quality} | {sigma} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Mean PSNR per sigma, one panel per model and quality, one bar per level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.evaluate import save_figure

    fig, axes = plt.subplots(1, len(MODELS) * len(QUALITIES), figsize=(18, 3.8), sharey=True)
    for ax, (name, quality) in zip(axes, [(m, q) for m in MODELS for q in QUALITIES]):
        for k, how in enumerate(("upload",) + LEVELS):
            means = []
            for sigma in SIGMAS:
                sel = [r for r in rows if r["model"] == name and r["quality"] == quality and r["sigma"] == sigma]
                means.append(np.mean([r[how] if how == "upload" else r[how]["psnr"] for r in sel]))
            ax.bar(np.arange(len(SIGMAS)) + 0.2 * (k - 1.5), means, 0.2, label=how)
        ax.set_xticks(range(len(SIGMAS)), [f"sigma {s}" for s in SIGMAS])
        ax.set_title(f"{name}, JPEG q{quality} 4:2:0", fontsize=9)
        ax.set_ylim(14, None)
    axes[0].set_ylabel("mean PSNR (dB), held-out images")
    axes[-1].legend(fontsize=8, loc="upper right")
    save_figure(fig, path, dpi=110)


def report(models: Path, out: Path, progress: bool = True) -> str:
    """Measure, write ``out/denoise_jpeg.md`` and ``.png``; returns the table."""
    rows = measure(models, progress)
    md = table(rows)
    out.mkdir(parents=True, exist_ok=True)
    head = (__doc__ or "").strip().split("\n\n", 1)[1]
    (out / "denoise_jpeg.md").write_text(f"# Noisy JPEG uploads\n\n{head}\n\n{md}\n")
    plot(rows, out / "denoise_jpeg.png")
    return md
