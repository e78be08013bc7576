"""Denoising training pieces: network shapes, noise estimate, baselines on a crop, a tiny run + export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modelrepo.noise import estimate_sigma
from modelrepo.repository import check_model_dir
from training.data.natural import random_patches, test_images, training_images
from training.loop import Run
from training.nets.autoencoder import ConvAutoencoder, DenoisingUNet, WithNoiseChannel
from training.tasks.denoise import DenoiseConfig, baselines, psnr, train_denoiser


@pytest.mark.parametrize("channels", [1, 3])
def test_network_shapes(channels: int) -> None:
    x = torch.rand(2, channels, 64, 48)
    level = torch.full((2, 1, 64, 48), 0.1)
    assert ConvAutoencoder(channels)(x).shape == x.shape
    net = DenoisingUNet(channels, base=8, depth=3).eval()
    with torch.no_grad():
        assert net(x, level).shape == x.shape
        odd = torch.rand(1, channels, 37, 53)
        assert net(odd, torch.zeros(1, 1, 37, 53)).shape == odd.shape
        assert WithNoiseChannel(net, channels)(torch.cat([x, level], 1)).shape == x.shape


@pytest.mark.parametrize("sigma", [5, 15, 25, 50])
def test_noise_estimate_agrees_with_scikit_image(sigma: int) -> None:
    from skimage.restoration import estimate_sigma as skimage_estimate

    clean = test_images()["camera"]
    noisy = clean + np.random.default_rng(sigma).normal(0, sigma / 255, clean.shape)
    ours, theirs = estimate_sigma(noisy) * 255, skimage_estimate(noisy) * 255
    assert abs(ours - sigma) < 0.1 * sigma + 1.5
    assert abs(ours - theirs) < 0.05 * sigma + 0.5


def test_held_out_images_are_not_in_training() -> None:
    train = training_images(gray=True)
    held = test_images(gray=True)
    assert all(t.shape != held["camera"].shape or not np.allclose(t, held["camera"]) for t in train)
    patches = random_patches(train, 5, 32, np.random.default_rng(0))
    assert patches.shape == (5, 1, 32, 32) and 0 <= patches.min() and patches.max() <= 1


def test_baselines_run_on_a_small_crop_and_help() -> None:
    clean = test_images()["camera"][200:264, 200:264]
    noisy = (clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape)).astype(np.float32)
    outs = baselines(noisy, clean, 25, use_bm3d=True)
    assert set(outs) == {"gaussian blur", "TV (Chambolle)", "NL-means (fast)", "BM3D"}
    for name, (out, seconds, _param) in outs.items():
        assert out.shape == clean.shape and seconds >= 0
        assert psnr(out, clean) > psnr(noisy, clean) + 2, name


def test_tiny_training_lowers_loss_and_exports_with_parity(tmp_path: Path) -> None:
    cfg = DenoiseConfig(
        base=8, depth=2, steps=40, ae_steps=20, batch_size=8, patch=32, bm3d=False, out=str(tmp_path / "runs")
    )
    r = train_denoiser(cfg, run=Run(export_to=tmp_path / "models", progress=False))
    assert r["losses"]["last"] < r["losses"]["first"]
    entry = check_model_dir(tmp_path / "models" / "unet_denoise_gray")
    assert entry.ok, entry.problems
    card = entry.card
    assert card.task == "denoising" and card.input.noise_level_channel and card.input.pad_multiple == 4
    assert "dims: [ 2, -1, -1 ]" in (entry.path / "config.pbtxt").read_text()
    methods = {row["method"] for row in r["rows"]}
    assert {"noisy", "NL-means (fast)", "ConvServe U-Net", "bottleneck AE (textbook)"} <= methods
    assert (tmp_path / "runs" / "unet_denoise_gray" / "panel.png").stat().st_size > 10_000
