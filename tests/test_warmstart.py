"""Warm starts from committed ONNX models (training.warmstart): the weights come back exactly, the
loop starts from them, and graphs that cannot give them back are refused."""

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


def test_folded_batch_norm_graph_is_refused():
    from training.nets.resnet import resnet20  # exported with batch norm folded into the convolutions

    with pytest.raises(ValueError, match="cannot initialise"):
        load_onnx_weights(resnet20(num_classes=10, in_channels=1), "models/resnet20_digits")


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
