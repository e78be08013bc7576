"""Training the denoisers on natural-image patches, evaluation against classical baselines, export."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from modelrepo.card import Architecture, CardDraft, DataProvenance, InputSpec, OutputSpec
from training.data.dead_leaves import dead_leaves_pool
from training.data.natural import (
    SKLEARN_TRAIN,
    SOURCE,
    TRAIN_NAMES,
    VALIDATION,
    random_patches,
    test_images,
    training_images,
    validation_images,
)
from training.denoise_ensemble import ensemble_gains, table
from training.denoise_patches import PatchSource, add_noise, blind_levels
from training.denoise_refine import refine_fit, refine_note
from training.evaluate import save_figure
from training.export import export_to_repository
from training.loop import LoopConfig, Run, fit_task, pick_device
from training.nets.autoencoder import ConvAutoencoder, WithNoiseChannel
from training.nets.drunet import ResUNetDenoiser
from training.nets.opponent import OpponentDenoiser
from training.tasks.denoise_eval import (
    AE_ROW,
    MODEL_ROW,
    TRUE_SIGMA_ROW,
    evaluate,
    margins,
    onnx_session,
    plot_panel,
    report,
)

HEADLINE_IMAGES = ("camera", "astronaut_gray", "astronaut")  # 512 x 512: the speed figures come from these


@dataclass
class DenoiseConfig:
    name: str = "unet_denoise_gray"
    gray: bool = True
    data_dir: str | None = None  # a folder of clean images instead of the bundled natural ones
    base: int = 32
    depth: int = 3
    blocks: int = 1  # residual blocks per level
    max_width: int = 96
    # colour models: joint (one network on the RGB channels) | opponent (a one-channel network on each
    # channel of an orthonormal opponent colour space, as CBM3D; --init-from a gray model warm-starts it)
    colour: str = "joint"
    steps: int = 5000  # planned; long runs stop on a time budget (--budget-min) and resume
    eval_every: int = 250  # steps between validation points (and checkpoints)
    ae_steps: int = 400  # the textbook bottleneck autoencoder, trained for comparison
    batch_size: int = 16
    patch: int = 128  # large patches: trained on 64 px the U-Net lost 1.2 dB on whole 512 px images
    lr: float = 5e-4
    # constant: warm-up then constant (open-ended runs that stop on a budget and resume); cosine: warm-up, then
    # down to zero at the last planned step (an annealing phase, e.g. --init-from a constant-rate model)
    schedule: str = "constant"
    ema: float = 0.999
    max_sigma: float = 55.0  # training noise levels, uniform in [0, max_sigma] on the 0-255 scale
    # share of each batch whose noise-level map is the service's blind estimate of the noisy patch
    # (modelrepo.noise.estimate_sigma), not the true sigma: the network learns the level as it is served
    # (the estimate reads texture as noise); > 0 also makes validation blind
    blind_share: float = 0.0
    leaves_share: float = 0.5  # share of each batch cut from dead-leaves images (the rest: natural images)
    leaves_pool: int = 400  # dead-leaves images of 256 x 256 generated once (cached under runs/cache)
    seed: int = 0
    device: str = "auto"
    out: str = "runs"
    bm3d: bool = True  # BM3D takes ~10 s per 512x512 image on 2 cores
    second_set: bool = True  # evaluate on the second held-out set too (not only camera / astronaut)
    evaluate: bool = True  # evaluate (and export) after training; --no-evaluate: train only
    # geometric self-ensemble served by default (1, 2, 4 or 8 flipped / rotated passes, averaged);
    # training.denoise_ensemble measures each size on the validation images
    ensemble: int = 1
    # blind requests: the wavelet estimate refined by the network's own residual, its share chosen on the training
    # images after training (training.denoise_refine; the card's input.noise_refine)
    refine_sigma: bool = False

    # not in the resume key
    RUN_ONLY: ClassVar[tuple[str, ...]] = ("bm3d", "second_set", "evaluate", "ensemble", "refine_sigma")


def _validation(cfg: DenoiseConfig, natural_val: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed noisy crops (96 px) never trained on: dead-leaves images from another seed and the
    bundled validation-only images, sigma spread over the training range."""
    rng, g = np.random.default_rng([cfg.seed, 7]), torch.Generator().manual_seed(cfg.seed + 7)
    leaves = dead_leaves_pool(8, cfg.gray, seed=10_000 + cfg.seed, size=128)
    clean = np.concatenate([random_patches(leaves, 16, 96, rng), random_patches(natural_val, 16, 96, rng)])
    clean_t = torch.from_numpy(clean)
    noisy, level = add_noise(clean_t, g, cfg.max_sigma)
    return noisy, blind_levels(noisy, level, 1.0 if cfg.blind_share > 0 else 0.0, rng), clean_t


def _val_psnr(out: torch.Tensor, clean: torch.Tensor) -> float:
    mse = ((out.clamp(0, 1) - clean) ** 2).mean(dim=(1, 2, 3))
    return float((10 * torch.log10(1 / mse)).mean())


def train_net(net: torch.nn.Module, source: PatchSource, val, steps: int, cfg: DenoiseConfig, name: str, run: Run):
    """Train on the shared loop (``runs/<name>``: resumable, EMA, warm-up then constant rate); validation
    PSNR on the fixed crops every ``eval_every`` steps. Returns the loop's result."""
    g = torch.Generator().manual_seed(cfg.seed)
    per_epoch = min(cfg.eval_every, steps)
    noisy_v, level_v, clean_v = val
    device = pick_device(cfg.device)

    def batches(epoch: int, rng: np.random.Generator):
        for _ in range(per_epoch):
            clean = source(cfg.batch_size, rng)
            noisy, level = add_noise(clean, g, cfg.max_sigma)
            yield noisy, (blind_levels(noisy, level, cfg.blind_share, rng), clean)

    @torch.no_grad()
    def validate(m: torch.nn.Module) -> tuple[float, float]:
        m.eval()
        out = torch.cat([m(noisy_v[i : i + 8].to(device), level_v[i : i + 8].to(device)) for i in range(0, 32, 8)])
        return _val_psnr(out.cpu(), clean_v), F.mse_loss(out.cpu(), clean_v).item()

    epochs = -(-steps // per_epoch)
    loop = LoopConfig(
        epochs, cfg.lr, 0.0, patience=epochs, ema=cfg.ema, seed=cfg.seed, device=cfg.device,
        schedule=f"warmup_{cfg.schedule}", warmup_steps=min(500, steps // 10 + 1),
    )  # fmt: skip
    fr, _ = fit_task(
        net, cfg, name, loop, per_epoch, batches, lambda m, x, lc: F.mse_loss(m(x, lc[0]), lc[1]),
        validate, {"model_args": getattr(net, "config", None)}, run,
    )  # fmt: skip
    return fr


def config_from_card(card) -> DenoiseConfig:
    """The run's config from a committed denoiser's card (its hyperparameters; fields added since: defaults)."""
    known = {f.name for f in fields(DenoiseConfig)}
    return DenoiseConfig(**{k: v for k, v in card.hyperparameters.items() if k in known})


def build_denoiser(cfg: DenoiseConfig) -> torch.nn.Module:
    """The serving network of ``cfg``: a ResUNetDenoiser, for an opponent colour model wrapped round a
    one-channel one."""
    if cfg.gray or cfg.colour == "joint":
        return ResUNetDenoiser(1 if cfg.gray else 3, cfg.base, cfg.depth, cfg.blocks, max_width=cfg.max_width)
    if cfg.colour == "opponent":
        return OpponentDenoiser(ResUNetDenoiser(1, cfg.base, cfg.depth, cfg.blocks, max_width=cfg.max_width))
    raise ValueError(f"unknown colour model {cfg.colour!r} (joint | opponent)")


def training_data(cfg: DenoiseConfig, run: Run) -> tuple[PatchSource, tuple]:
    """The patch source (dead leaves + natural images) and the fixed validation crops of ``cfg``."""
    natural = training_images(cfg.gray, cfg.data_dir)
    cache = str(Path(cfg.out) / "cache")
    leaves = (
        dead_leaves_pool(cfg.leaves_pool, cfg.gray, cfg.seed, cache=cache, progress=run.progress)
        if cfg.leaves_share
        else []
    )
    return PatchSource(cfg, natural, leaves), _validation(cfg, validation_images(cfg.gray))


def textbook_ae(cfg: DenoiseConfig, source: PatchSource, val, run: Run):
    """The lecture's bottleneck autoencoder, the reference row: short, never warm-started."""
    ae = ConvAutoencoder(1 if cfg.gray else 3)
    ae_run = replace(run, budget_s=None, init_from=None)
    return ae, train_net(ae, source, val, cfg.ae_steps, cfg, f"{cfg.name}_ae", ae_run)


def train_denoiser(cfg: DenoiseConfig, run: Run = Run()) -> dict:
    """Train the textbook autoencoder and the serving network on the shared loop (dead leaves +
    natural patches), then evaluate both against the classical baselines on the held-out images
    (through ONNX Runtime and the service's tiled path), write the table and plots, optionally export."""
    source, val = training_data(cfg, run)
    natural, leaves = source.natural, source.leaves
    out_dir = Path(cfg.out) / cfg.name
    out_dir.mkdir(parents=True, exist_ok=True)
    ae, ae_fit = textbook_ae(cfg, source, val, run)
    net = build_denoiser(cfg)
    fit = train_net(net, source, val, cfg.steps, cfg, cfg.name, run)
    prior = fit.initialised_from or {}  # a warm start: the committed model's training counts too
    steps_done = len(fit.history) * min(cfg.eval_every, cfg.steps) + (prior.get("steps_done") or 0)
    plot_validation(fit.history, min(cfg.eval_every, cfg.steps), out_dir / "validation.png")
    result = {
        "name": cfg.name,
        "losses": {
            "ae_first": ae_fit.history[0]["train_loss"],
            "ae_last": ae_fit.history[-1]["train_loss"],
            "first": fit.history[0]["train_loss"],
            "last": fit.history[-1]["train_loss"],
        },
        "val_psnr": fit.best_score,
        "steps_done": steps_done,
        "out_dir": str(out_dir),
        "train_seconds": round(fit.train_seconds + (prior.get("train_seconds") or 0), 1),
        "initialised_from": fit.initialised_from,
        "training_mix": {"natural_images": len(natural), "dead_leaves_images": len(leaves)},
    }
    if not cfg.evaluate:
        return result
    rows, result["ensemble_validation"], result["noise_refine"] = held_out_report(cfg, net, ae, out_dir)
    result |= {"rows": rows, "panel": str(out_dir / "panel.png")}
    if run.export_to is not None:
        card = export_denoiser(net, cfg, rows, result, run.export_to, run.version, run.overwrite)
        result["exported"] = str(run.export_to / card.name)
    return result


def held_out_report(cfg: DenoiseConfig, net: torch.nn.Module, ae: torch.nn.Module, out_dir: Path, head: str = ""):
    """The network (served as ``cfg`` says, self-ensemble included) and the textbook autoencoder through ONNX
    Runtime against the baselines on the held-out images, the self-ensemble's gains on the validation images;
    ``out_dir``: results.json / .md and panel.png. With ``cfg.refine_sigma`` the blind level's refinement is
    fitted first (on training images) and used throughout. Returns (rows, validation gains, the fit or None)."""
    channels = 1 if cfg.gray else 3
    sess = onnx_session(net, channels)
    spec = denoiser_input_spec(cfg, net.multiple)
    refine = refine_fit(sess, spec, cfg.gray) if cfg.refine_sigma else None
    spec = denoiser_input_spec(cfg, net.multiple, refine)
    ae_spec = spec.model_copy(update={"pad_multiple": 8, "ensemble": 1, "noise_refine": None})
    models = {AE_ROW: (onnx_session(ae, channels), ae_spec), MODEL_ROW: (sess, spec)}
    gains = ensemble_gains(models[MODEL_ROW][0], spec, cfg.gray)
    cache = Path(cfg.out) / "cache" / "denoise_baselines"
    rows, panel = evaluate(models, test_images(cfg.gray, cfg.second_set), cfg.bm3d, cache)
    (out_dir / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    validation = "Self-ensemble on the validation images (" + ", ".join(VALIDATION) + "), blind:"
    (out_dir / "results.md").write_text(
        head + report(rows) + f"\n\n{validation}\n\n" + table(gains) + "\n" + refine_note(refine)
    )
    plot_panel(panel, out_dir / "panel.png")
    return rows, gains, refine


def plot_validation(history: list[dict], every: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([(h["epoch"] + 1) * every for h in history], [h["val_score"] for h in history], marker=".")
    ax.set_xlabel("training step")
    ax.set_ylabel("validation PSNR (dB)")
    ax.set_title("held-out crops (dead leaves, other seed + validation images)", fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=90)


def card_metrics(rows: list[dict]) -> dict[str, float]:
    """Per held-out image and sigma: PSNR of the model (blind and with the true sigma), (C)BM3D,
    NL-means and the noisy input, the model's SSIM; then the model's worst margin over (C)BM3D and
    the seconds per image of both."""
    pick = {(r["image"], r["sigma"], r["method"]): r for r in rows}
    keys = {MODEL_ROW: "model", TRUE_SIGMA_ROW: "model_true_sigma", "BM3D": "bm3d", "CBM3D": "bm3d"}
    keys |= {"NL-means (fast)": "nlm", "noisy": "noisy"}
    metrics: dict[str, float] = {}
    for (img, s, method), r in pick.items():
        if method in keys:
            metrics[f"psnr_{img}_s{s}_{keys[method]}"] = r["psnr"]
        if method == MODEL_ROW:
            metrics[f"ssim_{img}_s{s}_model"] = r["ssim"]
    classical = "CBM3D" if any(r["method"] == "CBM3D" for r in rows) else "BM3D"
    gaps = margins(rows, classical)
    if gaps:
        metrics["psnr_margin_vs_bm3d_min"] = min(gaps.values())
        metrics["psnr_margin_vs_bm3d_mean"] = round(float(np.mean(list(gaps.values()))), 3)
    for method, key in ((MODEL_ROW, "model"), (classical, "bm3d")):
        secs = [r["seconds"] for r in rows if r["method"] == method and r["image"] in HEADLINE_IMAGES]
        if secs:
            metrics[f"seconds_512px_{key}"] = round(float(np.median(secs)), 3)
    return metrics


def denoiser_input_spec(cfg: DenoiseConfig, multiple: int, refine: dict | None = None) -> InputSpec:
    """The card's input; ``refine``: a ``training.denoise_refine.refine_fit`` result (its share)."""
    channels = 1 if cfg.gray else 3
    return InputSpec(
        color_mode="L" if cfg.gray else "RGB",
        channels=channels,
        height="any",
        width="any",
        mean=[0.0] * channels,
        std=[1.0] * channels,
        resize="none",
        pad_multiple=multiple,
        noise_level_channel=True,
        ensemble=cfg.ensemble,
        noise_refine=refine["share"] if refine else None,
    )


def _provenance(cfg: DenoiseConfig, result: dict) -> DataProvenance:
    mix = result["training_mix"]
    natural = f"folder:{cfg.data_dir}" if cfg.data_dir else TRAIN_NAMES + SKLEARN_TRAIN
    return DataProvenance(
        source=(f"folder:{cfg.data_dir}" if cfg.data_dir else SOURCE) + " + generated:dead_leaves",
        description=f"{mix['natural_images']} natural images and {mix['dead_leaves_images']} dead-leaves images "
        f"(256 px, seed {cfg.seed}); each batch {cfg.leaves_share:.0%} dead-leaves patches; random "
        f"{cfg.patch} px patches, Gaussian noise sigma ~ U(0, {cfg.max_sigma}) on the 0-255 scale"
        + (
            f"; the noise-level input of {cfg.blind_share:.0%} of the patches is the service's blind estimate of "
            "their sigma (as served), of the rest the true sigma"
            if cfg.blind_share
            else ""
        ),
        split={},
        sizes={"train_natural_images": mix["natural_images"], "train_dead_leaves_images": mix["dead_leaves_images"]}
        | {"test_images": len(test_images(cfg.gray, cfg.second_set))},
        seed=cfg.seed,
        augmentation={"rot90": True, "flip": True},
        images={
            "train_natural": natural,
            "train_generated": f"training.data.dead_leaves, seed {cfg.seed}, {cfg.leaves_pool} images",
            "validation": VALIDATION + [f"dead leaves seed {10_000 + cfg.seed}"],
            "test": list(test_images(cfg.gray, cfg.second_set)),
            "test_note": "images over 512 px: their central 512 x 512 crop; colour images in luminance for gray",
        },
    )


def _colour_note(cfg: DenoiseConfig) -> str:
    if cfg.gray:
        return "Gray images."
    if cfg.colour == "opponent":
        return (
            "Colour (RGB) images: one one-channel network on each channel of an orthonormal opponent colour "
            "space (luminance, red - blue, red + blue - 2 green; training/nets/opponent.py), as CBM3D."
        )
    return "Colour (RGB) images."


def export_denoiser(
    net: torch.nn.Module,
    cfg: DenoiseConfig,
    rows: list[dict],
    result: dict,
    export_to: Path,
    version: int | None = None,
    overwrite: bool = False,
):
    """Publish a trained denoiser (ResUNetDenoiser or its opponent-colour wrapper) with a card built
    from the evaluation rows."""
    channels = 1 if cfg.gray else 3
    net = net.cpu()
    hardware = f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}"
    card_fields = CardDraft(
        name=cfg.name,
        task="denoising",
        description="Light DRUNet-style residual U-Net (pixel-unshuffle, bias-free residual blocks) that predicts "
        "and subtracts the noise, with a noise-level input map; the service fills it from the sigma parameter "
        "or its wavelet noise estimate (blind in use). " + _colour_note(cfg),
        architecture=Architecture(
            name="opponent_resunet_denoiser" if isinstance(net, OpponentDenoiser) else "resunet_denoiser",
            family="autoencoder",
            preset="any-size",
            kwargs={k: v for k, v in net.config.items() if k not in ("kind", "channels")},
            num_parameters=sum(p.numel() for p in net.parameters()),
        ),
        input=denoiser_input_spec(cfg, net.multiple, result.get("noise_refine")),
        output=OutputSpec(name="image", kind="image", shape=[channels, "any", "any"]),
        labels=None,
        training=_provenance(cfg, result),
        hyperparameters=asdict(cfg)
        | {
            "loss": "MSE",
            "train_seconds": result["train_seconds"],
            "train_hours": round(result["train_seconds"] / 3600, 2),
            "steps_done": result["steps_done"],
            "initialised_from": result.get("initialised_from"),  # warm start: its steps and seconds are counted
            "val_psnr": round(result["val_psnr"], 3),
            "ensemble_validation": result.get("ensemble_validation"),  # PSNR per self-ensemble size
            "noise_refine": result.get("noise_refine"),  # the blind level's refinement: fit and its errors
            "hardware": hardware,
        },
        metrics=card_metrics(rows),
        headline_metric=f"psnr_{HEADLINE_IMAGES[0] if cfg.gray else 'astronaut'}_s25_model",
    )
    rng = np.random.default_rng(0)
    real = np.concatenate(
        [rng.random((2, channels, 64, 64), np.float32), np.full((2, 1, 64, 64), 25 / 255, np.float32)], axis=1
    )
    odd = np.concatenate(
        [rng.random((1, channels, 48, 80), np.float32), np.full((1, 1, 48, 80), 0.1, np.float32)], axis=1
    )
    return export_to_repository(
        WithNoiseChannel(net, channels), card_fields, export_to, real, version=version, overwrite=overwrite,
        max_batch_size=8, dynamic_spatial=True, extra_inputs=[odd], output_name="image",
    )  # fmt: skip
