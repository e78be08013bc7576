"""Denoising training pieces: network shapes, dead leaves, noise estimate, baselines on a crop, the
shared tiled path, a tiny run + export + make eval."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modelrepo.noise import estimate_sigma
from modelrepo.repository import check_model_dir
from tests.conftest import MODELS
from training.data.dead_leaves import LeavesConfig, dead_leaves, dead_leaves_pool
from training.data.natural import random_patches, test_images, training_images, validation_images
from training.denoise_patches import add_noise, blind_levels
from training.denoise_refine import SHARES
from training.eval_repo import evaluate_entry
from training.loop import Run
from training.nets.autoencoder import ConvAutoencoder, WithNoiseChannel
from training.nets.drunet import ResUNetDenoiser
from training.tasks.denoise import DenoiseConfig, train_denoiser
from training.tasks.denoise_eval import baselines, psnr


@pytest.mark.parametrize("channels", [1, 3])
def test_network_shapes(channels: int) -> None:
    x = torch.rand(2, channels, 64, 48)
    level = torch.full((2, 1, 64, 48), 0.1)
    assert ConvAutoencoder(channels)(x).shape == x.shape
    net = ResUNetDenoiser(channels, base=8, depth=3).eval()
    assert net.multiple == 16
    with torch.no_grad():
        assert net(x, level).shape == x.shape
        wide = torch.rand(1, channels, 32, 80)
        assert net(wide, torch.zeros(1, 1, 32, 80)).shape == wide.shape
        assert WithNoiseChannel(net, channels)(torch.cat([x, level], 1)).shape == x.shape
        # bias-free: a zero image at zero noise maps to exactly zero
        zero = torch.zeros(1, channels, 32, 32)
        assert net(zero, zero[:, :1]).abs().max() == 0


def test_dead_leaves_cover_the_canvas_with_many_sizes() -> None:
    im = dead_leaves(np.random.default_rng(0), LeavesConfig(size=96, max_leaves=1500))
    assert im.shape == (96, 96, 3) and im.dtype == np.float32 and 0 <= im.min() and im.max() <= 1
    assert im.std() > 0.05  # not a flat canvas
    # edges at many scales: a high-pass response both in the fine and the coarse band
    from scipy.ndimage import gaussian_filter

    gray = im.mean(axis=2)
    assert np.abs(gray - gaussian_filter(gray, 1)).mean() > 0.005
    assert np.abs(gaussian_filter(gray, 2) - gaussian_filter(gray, 8)).mean() > 0.01


def test_dead_leaves_pool_is_deterministic_and_cached(tmp_path: Path) -> None:
    a = dead_leaves_pool(3, gray=True, seed=5, size=64, cache=str(tmp_path), progress=False)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy"
    b = dead_leaves_pool(3, gray=True, seed=5, size=64, cache=str(tmp_path), progress=False)  # from the cache
    c = dead_leaves_pool(3, gray=False, seed=5, size=64, cache=None, progress=False)  # recomputed
    assert a[0].shape == (64, 64) and c[0].shape == (64, 64, 3)
    np.testing.assert_array_equal(a[2], b[2])
    np.testing.assert_allclose(a[1], c[1] @ np.array([0.2125, 0.7154, 0.0721], np.float32), atol=1e-6)


@pytest.mark.parametrize("sigma", [5, 15, 25, 50])
def test_noise_estimate_agrees_with_scikit_image(sigma: int) -> None:
    from skimage.restoration import estimate_sigma as skimage_estimate

    clean = test_images()["camera"]
    noisy = clean + np.random.default_rng(sigma).normal(0, sigma / 255, clean.shape)
    ours, theirs = estimate_sigma(noisy) * 255, skimage_estimate(noisy) * 255
    assert abs(ours - sigma) < 0.1 * sigma + 1.5
    assert abs(ours - theirs) < 0.05 * sigma + 0.5


def test_blind_levels_are_the_services_estimate_of_each_noisy_patch() -> None:
    rng = np.random.default_rng(0)
    clean = torch.from_numpy(random_patches(training_images(gray=True), 8, 64, rng))
    noisy, level = add_noise(clean, torch.Generator().manual_seed(0), 55.0)
    assert blind_levels(noisy, level, 0.0, rng) is level  # share 0: the true levels, untouched
    blind = blind_levels(noisy, level, 1.0, rng)
    assert blind.shape == level.shape and not torch.equal(blind, level)
    for i in range(8):  # every row: one constant map, the service's estimate of that noisy patch
        assert float(blind[i].min()) == float(blind[i].max())
        assert float(blind[i, 0, 0, 0]) == pytest.approx(estimate_sigma(noisy[i, 0].numpy()), rel=1e-6)
    half = blind_levels(noisy, level, 0.5, np.random.default_rng(3))
    kept = [torch.equal(half[i], level[i]) for i in range(8)]
    assert any(kept) and not all(kept)  # a share of the rows


def test_held_out_images_are_not_in_training() -> None:
    train = training_images(gray=True) + validation_images(gray=True)
    held = test_images(gray=True, second_set=True)
    assert len(held) >= 8  # camera, astronaut and a second set of at least six
    for name, h in held.items():
        for t in train:  # no held-out image is (a crop of) a training image
            if t.shape[0] >= h.shape[0] and t.shape[1] >= h.shape[1]:
                assert not np.allclose(t[: h.shape[0], : h.shape[1]], h), name
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


@pytest.mark.parametrize("gray", [True, False])
def test_tiny_training_lowers_loss_exports_and_make_eval_confirms(tmp_path: Path, gray: bool) -> None:
    cfg = DenoiseConfig(
        name="tiny", gray=gray, base=8, depth=2, max_width=16, steps=40, eval_every=20, ae_steps=16, batch_size=8,
        patch=32, leaves_pool=8, bm3d=False, second_set=False, out=str(tmp_path / "runs"),
    )  # fmt: skip
    r = train_denoiser(cfg, run=Run(export_to=tmp_path / "models", progress=False))
    assert r["losses"]["last"] < r["losses"]["first"]
    assert r["steps_done"] == 40 and r["training_mix"] == {"natural_images": 10, "dead_leaves_images": 8}
    entry = check_model_dir(tmp_path / "models" / "tiny")
    assert entry.ok, entry.problems
    card = entry.card
    assert card.task == "denoising" and card.input.noise_level_channel and card.input.pad_multiple == 8
    assert card.input.channels == (1 if gray else 3)
    assert f"dims: [ {card.input.channels + 1}, -1, -1 ]" in (entry.path / "config.pbtxt").read_text()
    assert card.training.images["test"] == (["camera", "astronaut_gray"] if gray else ["astronaut"])
    assert "dead_leaves" in card.training.source and card.hyperparameters["steps_done"] == 40
    methods = {row["method"] for row in r["rows"]}
    assert {"noisy", "NL-means (fast)", "ConvServe U-Net", "ConvServe U-Net (true sigma)"} <= methods
    assert "bottleneck AE (textbook)" in methods
    assert (tmp_path / "runs" / "tiny" / "panel.png").stat().st_size > 10_000
    assert (tmp_path / "runs" / "tiny" / "validation.png").stat().st_size > 5_000
    # make eval re-measures the card's figures from the ONNX file through the tiled path: they agree
    result = evaluate_entry(entry)
    assert result.ok, result.message
    # and it can fail: a card that claims 1 dB more than the file delivers is caught
    head = card.headline_metric
    card.metrics[head] += 1.0
    assert not evaluate_entry(entry).ok


def test_opponent_colour_wrapper_is_the_gray_network_on_each_opponent_channel() -> None:
    from training.nets.opponent import OpponentDenoiser

    gray = ResUNetDenoiser(1, base=8, depth=2).eval()
    colour = OpponentDenoiser(gray).eval()
    assert colour.multiple == gray.multiple and set(colour.state_dict()) == {f"net.{k}" for k in gray.state_dict()}
    t = colour.transform
    assert torch.allclose(t @ t.T, torch.eye(3), atol=1e-6)  # orthonormal: noise stays white, same sigma
    with torch.no_grad():
        g = torch.rand(1, 1, 32, 48)
        level = torch.full((1, 1, 32, 48), 0.1)
        out = colour(g.repeat(1, 3, 1, 1), level)  # a gray picture in RGB: both colour differences are 0
        # by hand: luminance (the mean) at sigma / sqrt(3), the differences flat at 0.5 with their own sigmas
        lum = gray(g, level / 3**0.5)
        d1 = (gray(torch.full_like(g, 0.5), level / 2**0.5) - 0.5) * 2**0.5
        d2 = (gray(torch.full_like(g, 0.5), level * 6**0.5 / 4) - 0.5) * 4 / 6**0.5
        opp = torch.cat([lum * 3**0.5, d1, d2], 1)
        want = torch.einsum("kc,bkhw->bchw", t, opp)
        torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-4)
        for p in gray.parameters():  # a network that predicts no noise: the wrapper returns its input
            p.zero_()
        y = torch.rand(2, 3, 32, 48)
        torch.testing.assert_close(colour(y, level.expand(2, 1, 32, 48)), y, atol=1e-5, rtol=1e-5)


def test_opponent_colour_model_warm_starts_from_a_gray_one_and_exports(tmp_path: Path) -> None:
    common = dict(base=8, depth=2, max_width=16, ae_steps=8, batch_size=4, patch=32, leaves_pool=4)
    common |= dict(bm3d=False, second_set=False, out=str(tmp_path / "runs"), eval_every=10)
    gray = DenoiseConfig(name="g", gray=True, steps=10, **common)
    train_denoiser(gray, run=Run(export_to=tmp_path / "models", progress=False))
    colour = DenoiseConfig(name="c", gray=False, colour="opponent", steps=10, **common)
    r = train_denoiser(colour, run=Run(export_to=tmp_path / "models", progress=False, init_from=tmp_path / "models/g"))
    assert r["steps_done"] == 20 and r["initialised_from"]["steps_done"] == 10  # the gray run's steps count
    entry = check_model_dir(tmp_path / "models" / "c")
    assert entry.ok and entry.card.input.channels == 3
    assert entry.card.architecture.name == "opponent_resunet_denoiser"
    assert entry.card.hyperparameters["initialised_from"]["model"].endswith("g/1/model.onnx")
    assert evaluate_entry(entry).ok


def test_a_committed_denoiser_gets_a_self_ensemble_with_the_same_weights(tmp_path: Path) -> None:
    import onnx

    from training.__main__ import main
    from training.warmstart import graph_weights

    cfg = DenoiseConfig(
        name="e", base=8, depth=2, max_width=16, steps=10, eval_every=10, ae_steps=8, batch_size=4, patch=32,
        leaves_pool=4, bm3d=False, second_set=False, out=str(tmp_path / "runs"),
    )  # fmt: skip
    train_denoiser(cfg, run=Run(export_to=tmp_path / "models", progress=False))
    before = check_model_dir(tmp_path / "models" / "e")
    assert before.card.input.ensemble == 1
    gains = before.card.hyperparameters["ensemble_validation"]
    assert gains["sizes"] == [1, 2, 4, 8] and gains["gain_db"][0] == 0 and len(gains["psnr"]) == 4
    w0 = graph_weights(onnx.load(str(before.version_path())).graph)
    argv = ["denoise-ensemble", str(tmp_path / "models" / "e"), "--ensemble", "4", "--out", str(tmp_path / "runs")]
    argv += ["--refine-sigma", "--export-to", str(tmp_path / "models"), "--version", "1", "--overwrite"]
    assert main(argv) == 0
    after = check_model_dir(tmp_path / "models" / "e")
    assert after.ok and after.card.input.ensemble == 4
    # the blind level's share, chosen on the training images (and checked on the validation ones) by PSNR
    refine = after.card.hyperparameters["noise_refine"]
    assert after.card.input.noise_refine == refine["share"] in SHARES and refine["fitted_on"][0] == "brick"
    assert refine["training"]["psnr"][f"share {refine['share']}"] == max(
        refine["training"]["psnr"][f"share {c}"] for c in SHARES
    )
    assert set(refine["validation"]["psnr"]) == {"estimate", "true sigma", f"share {refine['share']}"}
    for k in ("steps_done", "train_seconds", "val_psnr"):  # its training record is the card's
        assert after.card.hyperparameters[k] == before.card.hyperparameters[k]
    w1 = graph_weights(onnx.load(str(after.version_path())).graph)
    assert w0.keys() == w1.keys() and all(np.array_equal(w0[k], w1[k]) for k in w0)
    assert after.card.metrics != before.card.metrics  # the held-out table was measured again, with 4 passes
    report = (tmp_path / "runs" / "e_ensemble" / "results.md").read_text()
    assert report.count("| x") == 4 and "bottleneck AE (textbook)" in report  # every method's row
    assert evaluate_entry(after).ok  # make eval re-measures it with the card's ensemble and share


def test_the_jpeg_report_measures_what_the_service_does() -> None:
    """``python -m training denoise-jpeg`` on one held-out image per model at sigma 10: through a quality-75
    4:2:0 JPEG, the level measured as the file kept its noise is near the truth and denoises better than the
    per-plane level (which reads low: quantisation and chroma subsampling)."""
    from training.denoise_jpeg import measure, table

    rows = measure(MODELS, progress=False, limit=1, sigmas=(10,))
    assert {(r["model"], r["quality"]) for r in rows} == {
        (m, q) for m in ("unet_denoise_gray", "unet_denoise_rgb") for q in (75, 95)
    }
    for r in rows:
        assert 0.8 < r["as JPEG"]["level"] / 10 < 1.3, r
        assert r["as JPEG"]["psnr"] > r["upload"] + 2, r
        assert r["as JPEG"]["psnr"] > r["true"]["psnr"] - 0.3, r
    q75 = [r for r in rows if r["quality"] == 75]
    assert all(r["per plane"]["level"] < 0.8 * r["as JPEG"]["level"] for r in q75)
    assert all(r["as JPEG"]["psnr"] > r["per plane"]["psnr"] + 1 for r in q75)
    assert table(rows).count("\n") == 1 + len(rows)  # header, rule, one line per model / quality / sigma


def test_the_camera_report_shows_what_pd_does() -> None:
    """``python -m training denoise-camera`` on one held-out colour image: on the simulated camera's PNGs
    pd=true (pixel-shuffled) beats the default at every light level; on white Gaussian noise it loses."""
    from training.denoise_camera import measure, table

    rows = measure(MODELS, progress=False, limit=1)
    assert {(r["noise"], r["format"]) for r in rows} == {("camera", "PNG"), ("camera", "JPEG"), ("white", "PNG")}
    for r in rows:
        better = r["pd"]["psnr"] > r["default"]["psnr"]
        if r["format"] == "PNG":
            assert better == (r["noise"] == "camera"), r
    assert table(rows).count("\n") == 1 + len({(r["noise"], r["level"], r["format"]) for r in rows})
