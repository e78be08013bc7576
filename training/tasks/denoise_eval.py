"""Evaluating denoisers: the classical baselines (tuned per image with the clean image, cached), the
networks through ONNX Runtime and the service's own tiled path (``modelrepo/denoising.py``), blind
(sigma estimated by the service's estimator) and with the true sigma; PSNR, SSIM, seconds."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from modelrepo.card import InputSpec
from modelrepo.denoising import OVERLAP, TILE, blind_level, denoise
from modelrepo.noise import estimate_sigma
from training.evaluate import save_figure
from training.export import onnx_export
from training.nets.autoencoder import WithNoiseChannel

SIGMAS = (15, 25, 50)
MODEL_ROW = "ConvServe U-Net"
TRUE_SIGMA_ROW = "ConvServe U-Net (true sigma)"
AE_ROW = "bottleneck AE (textbook)"


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.clip(x, 0, 1) - ref) ** 2)))


def ssim(x: np.ndarray, ref: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(np.clip(x, 0, 1), ref, data_range=1.0, channel_axis=2 if ref.ndim == 3 else None)
    )


def noisy_version(clean: np.ndarray, sigma: float) -> np.ndarray:
    """The evaluation's noise realisation (the same in training's report and ``make eval``)."""
    rng = np.random.default_rng(1000 + int(sigma))
    return (clean + rng.normal(0, sigma / 255, clean.shape)).astype(np.float32)


def _best(fn, grid, noisy, clean):
    """Oracle-tuned baseline: the parameter of ``grid`` with the best PSNR (an upper bound for the
    method); (output, seconds of that run, parameter)."""
    runs = []
    for p in grid:
        t0 = time.perf_counter()
        out = fn(noisy, p)
        runs.append((psnr(out, clean), time.perf_counter() - t0, p, out))
    best = max(runs, key=lambda r: r[0])
    return best[3], best[1], best[2]


def baselines(
    noisy: np.ndarray, clean: np.ndarray, sigma: float, use_bm3d: bool
) -> dict[str, tuple[np.ndarray, float, str]]:
    """Each classical method: (output, seconds for one run, parameter used). Parameters tuned per
    image and sigma; BM3D (CBM3D for colour) gets the true sigma."""
    from scipy.ndimage import gaussian_filter
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

    ch = 2 if noisy.ndim == 3 else None
    s = sigma / 255
    methods = {
        "gaussian blur": (lambda y, p: gaussian_filter(y, (p, p, 0) if ch else p), [0.5, 0.8, 1.0, 1.3, 1.7, 2.2]),
        "TV (Chambolle)": (
            lambda y, p: denoise_tv_chambolle(y, weight=p * s, channel_axis=ch),
            [0.5, 0.8, 1.1, 1.5, 2.0],
        ),
        "NL-means (fast)": (
            lambda y, p: denoise_nl_means(
                y, h=p * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=ch
            ),
            [0.6, 0.8, 1.0, 1.2],
        ),
    }
    out = {}
    for name, (fn, grid) in methods.items():
        result, secs, p = _best(fn, grid, noisy, clean)
        out[name] = (result, secs, f"{p}")
    if use_bm3d:
        import bm3d

        t0 = time.perf_counter()
        result = bm3d.bm3d_rgb(noisy, s) if ch else bm3d.bm3d(noisy, s)
        out["CBM3D" if ch else "BM3D"] = (np.asarray(result), time.perf_counter() - t0, f"sigma_psd={sigma}/255")
    return out


def cached_baselines(
    name: str, noisy: np.ndarray, clean: np.ndarray, sigma: float, use_bm3d: bool, cache: Path | None
) -> dict[str, tuple[np.ndarray, float, str]]:
    """``baselines``, kept under ``cache`` (they do not depend on the network: BM3D alone is ~10 s)."""
    if cache is None:
        return baselines(noisy, clean, sigma, use_bm3d)
    key = cache / f"{name}_s{int(sigma)}_{'rgb' if noisy.ndim == 3 else 'gray'}_bm3d{int(use_bm3d)}"
    if key.with_suffix(".json").exists():
        meta = json.loads(key.with_suffix(".json").read_text())
        with np.load(key.with_suffix(".npz")) as arrays:  # our own cache file: plain arrays, no pickle
            return {m: (arrays[f"m{i}"].astype(np.float32), *meta[m]) for i, m in enumerate(meta)}
    out = baselines(noisy, clean, sigma, use_bm3d)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        key.with_suffix(".npz"), **{f"m{i}": v[0].astype(np.float16) for i, v in enumerate(out.values())}
    )
    key.with_suffix(".json").write_text(json.dumps({m: [v[1], v[2]] for m, v in out.items()}))
    return cached_baselines(name, noisy, clean, sigma, use_bm3d, cache)


def onnx_session(net: torch.nn.Module, channels: int, threads: int = 2) -> ort.InferenceSession:
    """The network as the service runs it: exported (noise map as the last input channel), ORT CPU."""
    net = WithNoiseChannel(net.cpu().eval(), channels)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        onnx_export(net, torch.rand(1, channels + 1, 64, 64), path, output_name="image", dynamic_spatial=True)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def session_infer(sess: ort.InferenceSession):
    name = sess.get_inputs()[0].name

    async def infer(x: np.ndarray) -> np.ndarray:
        return sess.run(None, {name: x})[0]

    return infer


def run_session(
    sess: ort.InferenceSession, spec: InputSpec, noisy: np.ndarray, sigma_255: float, stride: int = 1
) -> np.ndarray:
    """(H, W[, C]) -> denoised, through the service's tiled path with default tiles and the spec's
    self-ensemble; ``stride`` 2: on the pixel-shuffled sub-images (``/denoise?pd=true``)."""
    x = noisy[..., None] if noisy.ndim == 2 else noisy
    y = asyncio.run(denoise(session_infer(sess), x, spec, sigma_255, TILE, OVERLAP, group=8, stride=stride))
    return y[..., 0] if noisy.ndim == 2 else y


def run_blind(sess: ort.InferenceSession, spec: InputSpec, noisy: np.ndarray) -> tuple[np.ndarray, float]:
    """Denoised as a blind request is served: at the wavelet estimate, refined by the network's residual when
    the spec has ``noise_refine`` (``modelrepo.denoising.blind_level``); (output, level used)."""
    x = noisy[..., None] if noisy.ndim == 2 else noisy
    level = asyncio.run(blind_level(session_infer(sess), x, spec, estimate_sigma(noisy) * 255))
    return run_session(sess, spec, noisy, level), level


def _row(image: str, sigma: int, method: str, out: np.ndarray, clean: np.ndarray, secs: float, param: str) -> dict:
    return {
        "image": image,
        "sigma": sigma,
        "method": method,
        "psnr": round(psnr(out, clean), 2),
        "ssim": round(ssim(out, clean), 4),
        "seconds": round(secs, 3),
        "param": param,
    }


def evaluate(
    models: dict[str, tuple[ort.InferenceSession, InputSpec]],
    images: dict[str, np.ndarray],
    use_bm3d: bool,
    cache: Path | None,
    true_sigma: str | None = MODEL_ROW,
) -> tuple[list[dict], dict]:
    """Rows of PSNR / SSIM / seconds per image, sigma and method; the sigma-25 outputs for a panel.
    Networks run blind (sigma estimated from the noisy image); ``true_sigma`` names one that also
    runs with the true sigma."""
    rows, panel = [], {}
    for img_name, clean in images.items():
        for sigma in SIGMAS:
            noisy = noisy_version(clean, sigma)
            results = {"noisy": (noisy, 0.0, "")} | cached_baselines(img_name, noisy, clean, sigma, use_bm3d, cache)
            for label, (sess, spec) in models.items():  # blind: the time includes measuring the level
                t0 = time.perf_counter()
                out, level = run_blind(sess, spec, noisy)
                results[label] = (out, time.perf_counter() - t0, f"sigma_est={level:.1f}")
            if true_sigma in models:
                t0 = time.perf_counter()
                out = run_session(*models[true_sigma], noisy, float(sigma))
                results[TRUE_SIGMA_ROW] = (out, time.perf_counter() - t0, f"sigma={sigma}")
            rows += [_row(img_name, sigma, m, out, clean, secs, p) for m, (out, secs, p) in results.items()]
            if sigma == 25 and len(panel) < 2:
                panel[img_name] = {"clean": clean, **{k: v[0] for k, v in results.items() if k != TRUE_SIGMA_ROW}}
    return rows, panel


def table(rows: list[dict]) -> str:
    lines = ["| image | sigma | method | PSNR dB | SSIM | s / image |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {r['image']} | {r['sigma']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds']:.3f} |"
        for r in rows
    ]
    return "\n".join(lines)


def summary_table(rows: list[dict]) -> str:
    """Mean PSNR per method and sigma over all images."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    head = "| method | " + " | ".join(f"sigma {s}" for s in SIGMAS) + " |"
    lines = [head, "|---|" + "---|" * len(SIGMAS)]
    for m in methods:
        means = [np.mean([r["psnr"] for r in rows if r["method"] == m and r["sigma"] == s]) for s in SIGMAS]
        lines.append(f"| {m} | " + " | ".join(f"{v:.2f}" for v in means) + " |")
    return "\n".join(lines)


def margins_table(rows: list[dict], classical: str) -> str:
    """The model's PSNR minus ``classical`` per held-out image (rows) and sigma (columns), blind."""
    gaps = margins(rows, classical)
    images = list(dict.fromkeys(i for i, _ in gaps))
    lines = ["| image | " + " | ".join(f"sigma {s}" for s in SIGMAS) + " |", "|---|" + "---|" * len(SIGMAS)]
    lines += [f"| {i} | " + " | ".join(f"{gaps[(i, s)]:+.2f}" for s in SIGMAS) + " |" for i in images]
    return "\n".join(lines)


def report(rows: list[dict]) -> str:
    """Markdown: mean PSNR per method and sigma, the model's margin over (C)BM3D per image, every row."""
    classical = "CBM3D" if any(r["method"] == "CBM3D" for r in rows) else "BM3D"
    return (
        f"Mean PSNR (dB) over the held-out images, networks blind (sigma estimated):\n\n{summary_table(rows)}\n\n"
        f"ConvServe U-Net minus {classical}, dB (blind):\n\n{margins_table(rows, classical)}\n\n"
        f"Every row:\n\n{table(rows)}\n"
    )


def margins(rows: list[dict], classical: str, model: str = MODEL_ROW) -> dict[tuple[str, int], float]:
    """PSNR of ``model`` minus ``classical`` per (image, sigma)."""
    pick = {(r["image"], r["sigma"], r["method"]): r["psnr"] for r in rows}
    return {
        (i, s): round(pick[(i, s, model)] - pick[(i, s, classical)], 2)
        for (i, s, m) in pick
        if m == model and (i, s, classical) in pick
    }


def plot_panel(panel: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(next(iter(panel.values())))
    fig, axes = plt.subplots(len(panel), len(names), figsize=(2.6 * len(names), 2.9 * len(panel)), squeeze=False)
    for r, outs in enumerate(panel.values()):
        for c, name in enumerate(names):
            im = np.clip(outs[name], 0, 1)
            h, w = im.shape[:2]
            crop = im[h // 4 : h // 4 + 256, w // 4 : w // 4 + 256]
            axes[r][c].imshow(crop, cmap="gray", vmin=0, vmax=1)
            title = name
            if name != "clean":
                title += f"\n{psnr(outs[name], outs['clean']):.2f} dB"
            axes[r][c].set_title(title, fontsize=8)
            axes[r][c].axis("off")
    fig.suptitle("sigma = 25 (centre crops)", fontsize=10)
    save_figure(fig, path, dpi=90)


def write_examples(out: Path) -> list[Path]:
    """Noisy 256 x 256 crops (sigma 25, 8-bit PNG) of two held-out images, gray and colour."""
    from PIL import Image

    from training.data.natural import test_images

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, clean in (("camera", test_images(True)["camera"]), ("astronaut", test_images(False)["astronaut"])):
        crop = clean[64:320, 128:384]
        noisy = np.clip(noisy_version(crop, 25), 0, 1)
        path = out / f"noisy_{name}_s25.png"
        Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(path)
        written.append(path)
    return written
