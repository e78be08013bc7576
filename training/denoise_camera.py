"""Camera noise (``training.data.camera``: Bayer mosaic, Poisson-Gaussian noise, bilinear demosaicing, gamma)
through the committed colour denoiser, blind: as served by default, and with ``pd=true`` (pixel-shuffle
down-sampling, ``modelrepo.denoising.denoise`` with ``stride``); saved as PNG and as a quality-90 JPEG (measured
as the service measures each). Beside it, what ``pd=true`` costs on the white Gaussian noise of the cards'
table. Held-out colour images (``test_images(gray=False)``), PSNR against the noise-free pipeline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelrepo.denoising import SHUFFLE_STRIDE
from modelrepo.noise import estimate_sigma_shuffled
from training.denoise_jpeg import through_jpeg

PEAKS = (25, 100, 400)  # photons at full scale: a dim room .. daylight
READ = 0.004
WHITE_SIGMAS = (15, 25)
MODEL = "unet_denoise_rgb"


def _as_upload(x: np.ndarray, fmt: str) -> np.ndarray:
    """As an 8-bit PNG or a quality-90 4:2:0 JPEG would bring it."""
    if fmt == "PNG":
        return np.round(np.clip(x, 0, 1) * 255).astype(np.float32) / 255
    return through_jpeg(x, 90)


def measure(models: Path, progress: bool = True, limit: int | None = None) -> list[dict]:
    """One row per image and case: PSNR of the upload, blind default and blind ``pd=true``."""
    import onnxruntime as ort
    from tqdm import tqdm

    from modelrepo.repository import check_model_dir
    from training.data.camera import camera_pair
    from training.data.natural import test_images
    from training.tasks.denoise_eval import noisy_version, psnr, run_session

    entry = check_model_dir(models / MODEL)
    if not entry.ok or entry.card is None:
        raise ValueError(f"{models / MODEL}: {'; '.join(entry.problems)}")
    sess = ort.InferenceSession(str(entry.version_path()), providers=["CPUExecutionProvider"])
    images = dict(list(test_images(gray=False, second_set=True).items())[:limit])
    cases = [(n, "camera", p, f) for n in images for p in PEAKS for f in ("PNG", "JPEG")]
    cases += [(n, "white", s, "PNG") for n in images for s in WHITE_SIGMAS]
    rows = []
    for name, kind, level, fmt in tqdm(cases, desc="camera noise", disable=not progress):
        clean = images[name]
        if kind == "camera":
            seed = 2000 + level + 1000 * list(images).index(name)
            noisy, reference = camera_pair(clean, level, READ, np.random.default_rng(seed))
        else:
            noisy, reference = noisy_version(clean, level), clean
        upload, lossy = _as_upload(noisy, fmt), fmt == "JPEG"
        row = {"image": name, "noise": kind, "level": level, "format": fmt, "upload": psnr(upload, reference)}
        for key, stride in (("default", 1), ("pd", SHUFFLE_STRIDE)):
            sigma = estimate_sigma_shuffled(upload, lossy, stride) * 255
            out = run_session(sess, entry.card.input, upload, sigma, stride)
            row[key] = {"sigma": round(float(sigma), 2), "psnr": psnr(out, reference)}
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| noise | saved as | upload | default (blind) | `pd=true` (blind) |", "|---|---|---|---|---|"]
    keys = sorted({(r["noise"], r["level"], r["format"]) for r in rows}, key=lambda k: (k[0], k[2], k[1]))
    for noise, level, fmt in keys:
        sel = [r for r in rows if (r["noise"], r["level"], r["format"]) == (noise, level, fmt)]
        what = f"camera, {level} photons" if noise == "camera" else f"white Gaussian, sigma {level}"
        cells = [f"{np.mean([r['upload'] for r in sel]):.2f}"]
        for key in ("default", "pd"):
            sig = np.mean([r[key]["sigma"] for r in sel])
            cells.append(f"{np.mean([r[key]['psnr'] for r in sel]):.2f} (sigma {sig:.1f})")
        lines.append(f"| {what} ({len(sel)} images) | {fmt} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Mean PSNR per case: the upload, the default and ``pd=true``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.evaluate import save_figure

    keys = sorted({(r["noise"], r["level"], r["format"]) for r in rows}, key=lambda k: (k[0], k[2], k[1]))
    fig, ax = plt.subplots(figsize=(11, 3.8))
    for k, (key, label) in enumerate((("upload", "upload"), ("default", "default (blind)"), ("pd", "pd=true (blind)"))):
        means = []
        for case in keys:
            sel = [r for r in rows if (r["noise"], r["level"], r["format"]) == case]
            means.append(np.mean([r[key] if key == "upload" else r[key]["psnr"] for r in sel]))
        ax.bar(np.arange(len(keys)) + 0.27 * (k - 1), means, 0.27, label=label)
    names = [f"camera {lv}\n{fmt}" if n == "camera" else f"white s{lv}\n{fmt}" for n, lv, fmt in keys]
    ax.set_xticks(range(len(keys)), names, fontsize=8)
    ax.set_ylim(15, None)
    ax.set_ylabel(f"mean PSNR (dB), {MODEL}")
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=110)


def report(models: Path, out: Path, progress: bool = True) -> str:
    """Measure, write ``out/denoise_camera.md`` and ``.png``; returns the table."""
    rows = measure(models, progress)
    md = table(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "denoise_camera.md").write_text(f"# Camera noise\n\n{(__doc__ or '').strip()}\n\n{md}\n")
    plot(rows, out / "denoise_camera.png")
    return md
