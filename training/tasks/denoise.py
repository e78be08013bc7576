"""Training the denoisers on natural-image patches, evaluation against classical baselines, export."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from modelrepo.card import Architecture, CardDraft, DataProvenance, InputSpec, OutputSpec
from modelrepo.noise import estimate_sigma
from modelrepo.preprocess import pad_to_multiple
from training.data.natural import SOURCE, random_patches, test_images, training_images
from training.evaluate import save_figure
from training.export import export_to_repository
from training.loop import LoopConfig, Run, fit_task, pick_device
from training.nets.autoencoder import ConvAutoencoder, DenoisingUNet, WithNoiseChannel

SIGMAS = (15, 25, 50)


@dataclass
class DenoiseConfig:
    name: str = "unet_denoise_gray"
    gray: bool = True
    data_dir: str | None = None  # a folder of clean images instead of the bundled ones
    base: int = 16
    depth: int = 3
    steps: int = 5000
    ae_steps: int = 400  # the textbook bottleneck autoencoder, trained for comparison
    batch_size: int = 4
    patch: int = 128  # large patches: trained on 64 px the U-Net lost 1.2 dB on whole 512 px images
    lr: float = 2e-3
    max_sigma: float = 55.0  # training noise levels, uniform in [0, max_sigma] on the 0-255 scale
    seed: int = 0
    device: str = "auto"
    out: str = "runs"
    bm3d: bool = True  # BM3D takes ~10 s per 512x512 image on 2 cores


def _noisy(clean: torch.Tensor, g: torch.Generator, max_sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    sigma = torch.rand(clean.shape[0], 1, 1, 1, generator=g) * max_sigma / 255  # (B, 1, 1, 1)
    noisy = clean + torch.randn(clean.shape, generator=g) * sigma
    return noisy, sigma.expand(-1, 1, *clean.shape[2:])


EVALS = 10  # validation points over a run: the loop's "epochs" are steps / EVALS steps each


def _fixed_crops(images: list[np.ndarray], cfg: DenoiseConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Monitoring set: 16 fixed noisy crops of the training images (not held out: the held-out
    images are only used by ``evaluate``)."""
    rng, g = np.random.default_rng([cfg.seed, 1]), torch.Generator().manual_seed(cfg.seed + 1)
    clean = torch.from_numpy(random_patches(images, 16, cfg.patch, rng))
    noisy, level = _noisy(clean, g, cfg.max_sigma)
    return noisy, level, clean


def train_net(
    net: torch.nn.Module,
    images: list[np.ndarray],
    steps: int,
    cfg: DenoiseConfig,
    name: str,
    progress: bool,
    resume: bool,
) -> list[dict]:
    """Train on the shared loop (``runs/<name>``: resumable); the history, one row per tenth of the steps."""
    g = torch.Generator().manual_seed(cfg.seed)
    per_epoch = -(-steps // EVALS)
    noisy_v, level_v, clean_v = _fixed_crops(images, cfg)
    device = pick_device(cfg.device)

    def batches(epoch: int, rng: np.random.Generator):
        for _ in range(per_epoch):
            clean = torch.from_numpy(random_patches(images, cfg.batch_size, cfg.patch, rng))
            noisy, level = _noisy(clean, g, cfg.max_sigma)
            yield noisy, (level, clean)

    @torch.no_grad()
    def validate(m: torch.nn.Module) -> tuple[float, float]:
        m.eval()
        mse = F.mse_loss(m(noisy_v.to(device), level_v.to(device)), clean_v.to(device)).item()
        return -mse, mse

    epochs = -(-steps // per_epoch)
    loop = LoopConfig(epochs, cfg.lr, 0.0, patience=epochs, ema=None, seed=cfg.seed, device=cfg.device)
    fr, _ = fit_task(
        net, cfg, name, loop, per_epoch, batches, lambda m, x, lc: F.mse_loss(m(x, lc[0]), lc[1]),
        validate, {"model_args": getattr(net, "config", None)}, resume, progress,
    )  # fmt: skip
    return fr.history


@torch.no_grad()
def run_net(net: torch.nn.Module, noisy: np.ndarray, sigma_255: float, device, multiple: int = 8) -> np.ndarray:
    """(H, W[, C]) in [0, 1] -> denoised, padding to the network's multiple."""
    net.eval()
    x = noisy[None] if noisy.ndim == 2 else noisy.transpose(2, 0, 1)  # (C, H, W)
    h, w = x.shape[1:]
    x = pad_to_multiple(x, multiple)
    t = torch.from_numpy(np.ascontiguousarray(x[None], dtype=np.float32)).to(device)
    level = torch.full((1, 1, *t.shape[2:]), sigma_255 / 255, device=device)
    y = net(t, level)[0, :, :h, :w].cpu().numpy()
    return y[0] if noisy.ndim == 2 else y.transpose(1, 2, 0)


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.clip(x, 0, 1) - ref) ** 2)))


def ssim(x: np.ndarray, ref: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(np.clip(x, 0, 1), ref, data_range=1.0, channel_axis=2 if ref.ndim == 3 else None)
    )


def _best(fn, grid, noisy, clean):
    """Oracle-tuned baseline: the parameter of ``grid`` with the best PSNR (an upper bound for the method)."""
    best = max(((psnr(out := fn(noisy, p), clean), p, out) for p in grid), key=lambda t: t[0])
    return best[2], best[1]


def baselines(
    noisy: np.ndarray, clean: np.ndarray, sigma: float, use_bm3d: bool
) -> dict[str, tuple[np.ndarray, float, str]]:
    """Each classical method: (output, seconds for one run, parameter used). Parameters tuned per image and sigma."""
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
        result, p = _best(fn, grid, noisy, clean)
        t0 = time.perf_counter()
        fn(noisy, p)
        out[name] = (result, time.perf_counter() - t0, f"{p}")
    if use_bm3d:
        import bm3d

        t0 = time.perf_counter()
        result = bm3d.bm3d_rgb(noisy, s) if ch else bm3d.bm3d(noisy, s)
        out["BM3D"] = (np.asarray(result), time.perf_counter() - t0, f"sigma_psd={sigma}/255")
    return out


def evaluate(nets: dict[str, torch.nn.Module], cfg: DenoiseConfig, device) -> tuple[list[dict], dict]:
    """PSNR/SSIM/seconds per test image, sigma and method; returns the rows and the images for a panel."""
    rows, panel = [], {}
    for img_name, clean in test_images(cfg.gray).items():
        for sigma in SIGMAS:
            rng = np.random.default_rng(1000 + sigma)
            noisy = (clean + rng.normal(0, sigma / 255, clean.shape)).astype(np.float32)
            results = {"noisy": (noisy, 0.0, "")} | baselines(noisy, clean, sigma, cfg.bm3d)
            est = estimate_sigma(noisy) * 255
            for label, net in nets.items():
                t0 = time.perf_counter()
                out = run_net(net, noisy, est, device)  # blind: sigma estimated from the image itself
                results[label] = (out, time.perf_counter() - t0, f"sigma_est={est:.1f}")
            for method, (out, secs, param) in results.items():
                rows.append(
                    {
                        "image": img_name,
                        "sigma": sigma,
                        "method": method,
                        "psnr": round(psnr(out, clean), 2),
                        "ssim": round(ssim(out, clean), 4),
                        "seconds": round(secs, 3),
                        "param": param,
                    }
                )
            if sigma == 25:
                panel[img_name] = {"clean": clean, **{k: v[0] for k, v in results.items()}}
    return rows, panel


def table(rows: list[dict]) -> str:
    lines = ["| image | sigma | method | PSNR dB | SSIM | s / image |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {r['image']} | {r['sigma']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds']:.3f} |"
        for r in rows
    ]
    return "\n".join(lines)


def plot_panel(panel: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(next(iter(panel.values())))
    fig, axes = plt.subplots(len(panel), len(names), figsize=(2.6 * len(names), 2.9 * len(panel)), squeeze=False)
    for r, outs in enumerate(panel.values()):
        for c, name in enumerate(names):
            im = np.clip(outs[name], 0, 1)
            crop = im[128:384, 128:384]
            axes[r][c].imshow(crop, cmap="gray", vmin=0, vmax=1)
            title = name
            if name != "clean":
                title += f"\n{psnr(outs[name], outs['clean']):.2f} dB"
            axes[r][c].set_title(title, fontsize=8)
            axes[r][c].axis("off")
    fig.suptitle("sigma = 25 (centre crops)", fontsize=10)
    save_figure(fig, path, dpi=90)


def train_denoiser(
    cfg: DenoiseConfig,
    run: Run = Run(),
) -> dict:
    """Train the textbook autoencoder and the serving U-Net on the shared loop, evaluate both against
    the classical baselines on the held-out images, write the table and panel, optionally export."""
    device = pick_device(cfg.device)
    channels = 1 if cfg.gray else 3
    images = training_images(cfg.gray, cfg.data_dir)
    out_dir = Path(cfg.out) / cfg.name
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    ae = ConvAutoencoder(channels)
    ae_losses = [
        h["train_loss"] for h in train_net(ae, images, cfg.ae_steps, cfg, f"{cfg.name}_ae", run.progress, run.resume)
    ]
    net = DenoisingUNet(channels, cfg.base, cfg.depth)
    history = train_net(net, images, cfg.steps, cfg, cfg.name, run.progress, run.resume)
    losses = [h["train_loss"] for h in history]
    train_seconds = time.time() - t0
    rows, panel = evaluate({"bottleneck AE (textbook)": ae, "ConvServe U-Net": net}, cfg, device)
    (out_dir / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out_dir / "results.md").write_text(table(rows) + "\n")
    plot_panel(panel, out_dir / "panel.png")
    # mean training loss over the first and the last tenth of the steps
    curve = {"ae_first": ae_losses[0], "ae_last": ae_losses[-1], "first": losses[0], "last": losses[-1]}
    result = {
        "name": cfg.name,
        "rows": rows,
        "losses": curve,
        "out_dir": str(out_dir),
        "panel": str(out_dir / "panel.png"),
        "train_seconds": round(train_seconds, 1),
    }
    torch.save(
        {
            "model_args": net.config,
            "config": asdict(cfg),
            "state_dict": net.state_dict(),
            "train_seconds": round(train_seconds),
            "n_images": len(images),
        },
        out_dir / "checkpoint.pt",
    )
    if run.export_to is not None:
        card = export_denoiser(net, cfg, rows, len(images), train_seconds, run.export_to, run.version, run.overwrite)
        result["exported"] = str(run.export_to / card.name)
    return result


def _card_metrics(cfg: DenoiseConfig, rows: list[dict]) -> dict[str, float]:
    """PSNR of the model, BM3D, NL-means and the noisy input, and the model's SSIM, per held-out image and sigma."""
    pick = {(r["image"], r["sigma"], r["method"]): r for r in rows}
    methods = (("ConvServe U-Net", "model"), ("BM3D", "bm3d"), ("NL-means (fast)", "nlm"), ("noisy", "noisy"))
    metrics = {}
    for img in test_images(cfg.gray):
        for s in SIGMAS:
            for method, key in methods:
                if (img, s, method) in pick:
                    metrics[f"psnr_{img}_s{s}_{key}"] = pick[(img, s, method)]["psnr"]
            metrics[f"ssim_{img}_s{s}_model"] = pick[(img, s, "ConvServe U-Net")]["ssim"]
    return metrics


def denoiser_input_spec(cfg: DenoiseConfig) -> InputSpec:
    channels = 1 if cfg.gray else 3
    return InputSpec(
        color_mode="L" if cfg.gray else "RGB",
        channels=channels,
        height="any",
        width="any",
        mean=[0.0] * channels,
        std=[1.0] * channels,
        resize="none",
        pad_multiple=2**cfg.depth,
        noise_level_channel=True,
    )


def export_denoiser(
    net: torch.nn.Module,
    cfg: DenoiseConfig,
    rows: list[dict],
    n_images: int,
    train_seconds: float | None,
    export_to: Path,
    version: int | None = None,
    overwrite: bool = False,
):
    """Publish a trained DenoisingUNet with a card built from the evaluation rows."""
    channels = 1 if cfg.gray else 3
    images = range(n_images)  # only its length is recorded
    net = net.cpu()
    metrics = _card_metrics(cfg, rows)
    spec = denoiser_input_spec(cfg)
    card_fields = CardDraft(
        name=cfg.name,
        task="denoising",
        description="Residual U-Net denoiser (predicts and subtracts the noise) with a noise-level input map; "
        "the service fills it from the sigma parameter or a wavelet noise estimate (blind in use).",
        architecture=Architecture(
            name="denoising_unet",
            family="autoencoder",
            preset="any-size",
            kwargs={"base": cfg.base, "depth": cfg.depth},
            num_parameters=sum(p.numel() for p in net.parameters()),
        ),
        input=spec,
        output=OutputSpec(name="image", kind="image", shape=[channels, "any", "any"]),
        labels=None,
        training=DataProvenance(
            source=SOURCE if not cfg.data_dir else f"folder:{cfg.data_dir}",
            description=f"{len(images)} clean images, random {cfg.patch}x{cfg.patch} patches, "
            f"Gaussian noise sigma ~ U(0, {cfg.max_sigma}) on the 0-255 scale",
            split={},
            sizes={"train_images": len(images), "test_images": 2},
            seed=cfg.seed,
            augmentation={"rot90": True, "flip": True},
        ),
        hyperparameters=asdict(cfg) | {"loss": "MSE", "train_seconds": round(train_seconds) if train_seconds else None},
        metrics=metrics,
    )
    rng = np.random.default_rng(0)
    real = np.concatenate(
        [rng.random((2, channels, 64, 64), np.float32), np.full((2, 1, 64, 64), 25 / 255, np.float32)], axis=1
    )
    odd = np.concatenate(
        [rng.random((1, channels, 40, 56), np.float32), np.full((1, 1, 40, 56), 0.1, np.float32)], axis=1
    )
    return export_to_repository(
        WithNoiseChannel(net, channels), card_fields, export_to, real, version=version, overwrite=overwrite,
        max_batch_size=8, dynamic_spatial=True, extra_inputs=[odd], output_name="image",
    )  # fmt: skip
