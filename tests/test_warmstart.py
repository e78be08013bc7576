"""Warm starts from committed ONNX models (training.warmstart): the weights come back exactly, the
loop starts from them, and graphs that cannot give them back are refused."""

import copy
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.loop import LoopConfig, fit
from training.nets.drunet import ResUNetDenoiser
from training.warmstart import load_onnx_weights, model_file, prior_training

DENOISER = "models/unet_denoise_gray"


def _committed_denoiser() -> ResUNetDenoiser:
    kwargs = json.loads(open(f"{DENOISER}/card.json").read())["architecture"]["kwargs"]
    return ResUNetDenoiser(1, **kwargs)


def test_committed_denoiser_weights_reproduce_its_onnx_outputs():
    net = _committed_denoiser().eval()
    load_onnx_weights(net, DENOISER)
    x = np.random.default_rng(0).random((1, 1, 48, 64), np.float32)
    level = np.full_like(x, 25 / 255)
    sess = ort.InferenceSession(str(model_file(DENOISER)), providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: np.concatenate([x, level], axis=1)})[0]
    with torch.no_grad():
        got = net(torch.from_numpy(x), torch.from_numpy(level)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_prior_training_reads_the_card():
    prior = prior_training(DENOISER)
    card = json.loads(open(f"{DENOISER}/card.json").read())["hyperparameters"]
    assert prior["steps_done"] == card["steps_done"] > 0
    assert prior["model"].endswith("model.onnx")


def _folded_unet(path: Path):
    """A small U-Net with trained-looking batch norm statistics, exported the old way (eval mode: the
    exporter folds each batch norm into the convolution before it), as ``unet_cells`` was until 2026-12-06."""
    import warnings

    from training.nets.unet import UNet

    torch.manual_seed(0)
    net = UNet(in_channels=1, num_classes=3, base=8, depth=3)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 1, 32, 32),), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}}, dynamo=False,
                          training=torch.onnx.TrainingMode.EVAL)  # fmt: skip
    import onnx

    assert not any(n.op_type == "BatchNormalization" for n in onnx.load(str(path)).graph.node)  # folded
    return net


def test_folded_batch_norm_graph_is_refused_when_its_convolutions_do_not_match(tmp_path):
    from training.nets.resnet import resnet20
    from training.nets.unet import UNet

    with pytest.raises(ValueError, match="cannot initialise"):  # another network's graph: nothing matches
        load_onnx_weights(resnet20(num_classes=10, in_channels=1), "models/lenet5_digits")
    load_onnx_weights(resnet20(num_classes=10, in_channels=1), "models/resnet20_digits")  # its own: by name
    _folded_unet(tmp_path / "model.onnx")
    with pytest.raises(ValueError, match="one for one"):  # a wider U-Net than the graph's
        load_onnx_weights(UNet(in_channels=1, num_classes=3, base=16, depth=3), tmp_path / "model.onnx")


def test_folded_batch_norm_graph_warm_starts_convolution_by_convolution(tmp_path):
    """Each convolution gets the folded kernel and bias, its batch norm the identity: the same outputs as
    the ONNX graph (and as the network that was exported)."""
    from training.nets.unet import UNet

    original = _folded_unet(tmp_path / "model.onnx")
    net = UNet(in_channels=1, num_classes=3, base=8, depth=3)
    load_onnx_weights(net, tmp_path / "model.onnx")
    net.eval()
    x = np.random.default_rng(1).random((1, 1, 64, 96), np.float32)
    sess = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x})[0]
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, want, atol=1e-4)
        np.testing.assert_allclose(got, original(torch.from_numpy(x)).numpy(), atol=1e-4)
    norm = net.inc.double_conv[1]
    assert (norm.weight == 1).all() and (norm.running_mean == 0).all()


def test_fit_starts_from_the_committed_weights(tmp_path):
    net = _committed_denoiser()
    reference = _committed_denoiser()
    load_onnx_weights(reference, DENOISER)
    seen = []

    def validate(m):
        seen.append({k: v.clone() for k, v in m.state_dict().items()})
        return 0.0, 0.0

    cfg = LoopConfig(epochs=1, lr=0.0, weight_decay=0.0, ema=0.999, schedule="warmup_constant", warmup_steps=1)
    x = torch.rand(1, 1, 32, 32)
    result = fit(
        net, cfg, 1, lambda e, rng: [(x, (torch.full_like(x, 0.1), x))],
        lambda m, x, lc: torch.nn.functional.mse_loss(m(x, lc[0]), lc[1]),
        validate, tmp_path, {}, {}, progress=False, init_from=DENOISER,
    )  # fmt: skip
    assert result.initialised_from["steps_done"] > 0
    for k, v in reference.state_dict().items():  # lr 0: one step leaves the warm-started weights as they were
        torch.testing.assert_close(seen[0][k], v)


def test_the_task_table_passes_resume_budget_and_warm_start_through(monkeypatch):
    import training.tasks.denoise as denoise
    from training.tasks import TASKS

    seen = {}
    monkeypatch.setattr(denoise, "train_denoiser", lambda cfg, run: seen.setdefault("run", run))
    TASKS["denoise"].run(denoise.DenoiseConfig(), None, None, False, True, 60.0, Path(DENOISER))
    run = seen["run"]
    assert run.resume is True and run.progress is True and run.budget_s == 60.0 and run.init_from == Path(DENOISER)


def _bn_unet_with_statistics() -> torch.nn.Module:
    from training.nets.unet import UNet

    torch.manual_seed(0)
    net = UNet(in_channels=1, num_classes=3, base=4, depth=2)
    net.train()
    with torch.no_grad():  # batch-norm running statistics away from their initial 0 / 1
        for _ in range(3):
            net(torch.randn(4, 1, 32, 32) * 3 + 1)
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))  # weights away from the shared initial values
    return net.eval()


@pytest.mark.parametrize("fp16", [False, True])
def test_batch_norm_network_warm_starts_from_its_export(tmp_path, fp16):
    """Exports keep batch norm as nodes, so a U-Net with batch norm comes back from its ONNX file
    (exactly, or to float16 rounding from float16 storage) and reproduces the file's outputs."""
    import onnx

    from training.export import onnx_export
    from training.fp16_weights import to_fp16_weights
    from training.nets.unet import UNet

    net = _bn_unet_with_statistics()
    path = tmp_path / "model.onnx"
    onnx_export(net, torch.rand(1, 1, 32, 32), path, dynamic_spatial=True)
    if fp16:
        converted, n = to_fp16_weights(onnx.load(str(path)))
        assert n > 0
        onnx.save(converted, str(path))
    fresh = UNet(in_channels=1, num_classes=3, base=4, depth=2).eval()
    load_onnx_weights(fresh, path)
    want_state = net.state_dict()
    for key, value in fresh.state_dict().items():
        if value.dtype.is_floating_point:
            torch.testing.assert_close(value, want_state[key], rtol=1e-3 if fp16 else 0, atol=1e-3 if fp16 else 0)
    x = np.random.default_rng(1).random((1, 1, 48, 40), np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        got = fresh(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_unfolded_batch_norms_are_calibrated_to_start_training_near_the_committed_network(tmp_path):
    """Identity batch norms would renormalise every activation in training mode; calibrated on a batch,
    the eval-mode function is unchanged and training mode answers nearly the same on that batch."""
    from training.nets.unet import UNet
    from training.warmstart import calibrate_unfolded_norms

    _folded_unet(tmp_path / "model.onnx")
    net = UNet(in_channels=1, num_classes=3, base=8, depth=3)
    load_onnx_weights(net, tmp_path / "model.onnx")
    x = torch.from_numpy(np.random.default_rng(2).random((4, 1, 64, 64), np.float32))
    with torch.no_grad():
        before = net.eval()(x)
        raw = copy.deepcopy(net).train()(x)  # (a copy: training mode updates running statistics)
    assert (raw - before).abs().max() > 0.1  # raw identity norms: off in training mode
    assert calibrate_unfolded_norms(net, x) == 14  # every batch norm of the U-Net (two per double conv)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), before, atol=1e-4, rtol=1e-4)
        assert (net.train()(x) - before).abs().max() < 1e-2
    assert calibrate_unfolded_norms(net, x) == 0  # calibrated ones are not touched again
