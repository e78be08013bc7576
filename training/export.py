"""ONNX export into the model repository: one library function, the CLI only calls it.

Fixed input/output names, dynamic batch axis (and spatial axes when asked), opset >= 17,
``onnx.checker`` full check, ONNX Runtime parity against PyTorch on real and random inputs, then
the version folder, ``config.pbtxt``, ``labels.txt`` and ``card.json`` with the file's sha256.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from modelrepo.card import CardDraft, ExportInfo, ModelCard, VersionFile
from modelrepo.repository import CARD_FILE, MODEL_FILE, sha256_file, write_repository_files

OPSET = 17
RTOL, ATOL = 1e-3, 1e-5


def git_commit(cwd: Path | None = None) -> str | None:
    """HEAD's commit, with ``-dirty`` when code has uncommitted changes; None outside git.

    Run in the model repository being written: changes inside it (the models themselves) do not
    count as dirty code."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(exclude)."],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def onnx_export(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    input_name: str = "input",
    output_name: str = "logits",
    dynamic_spatial: bool = False,
    opset: int = OPSET,
) -> None:
    """Export ``model`` (put in eval mode) to ``path`` and run onnx's full checker."""
    model.eval()
    axes = {0: "batch"} | ({2: "height", 3: "width"} if dynamic_spatial else {})
    with warnings.catch_warnings():
        # dynamo=False is the fast TorchScript exporter (< 1 s); torch marks it deprecated.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=[output_name],
            # image-to-image outputs share the input's spatial axes; logits only the batch axis
            dynamic_axes={input_name: axes, output_name: axes if dynamic_spatial else {0: "batch"}},
            opset_version=opset,
            dynamo=False,
            # batch norm stays a node (inference mode: the model is in eval) instead of being folded
            # into the convolutions, so every weight keeps its PyTorch name and a later session can
            # warm-start from the committed file (``--init-from``); ONNX Runtime fuses it at load
            training=torch.onnx.TrainingMode.PRESERVE,
        )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def parity_check(model: nn.Module, path: Path, inputs: list[np.ndarray]) -> float:
    """Run each input through PyTorch and ONNX Runtime (CPU); assert closeness; return max |diff|.

    Tolerance: rtol 1e-3 and atol 1e-5 for outputs of order one. float32 rounding grows with the
    output's magnitude (a random ResNet-50's logits reach +-40), so atol is scaled by max |output|
    when that exceeds 1; near-zero outputs of large-scale tensors are otherwise judged by noise.
    """
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    worst = 0.0
    model.eval()
    for x in inputs:
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = sess.run(None, {name: x})[0]
        atol = ATOL * max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=atol, err_msg=f"ORT/PyTorch parity, input {x.shape}")
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def next_version(model_dir: Path) -> int:
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def export_to_repository(
    model: nn.Module,
    draft: CardDraft,
    repo_root: Path,
    real_inputs: np.ndarray,
    version: int | None = None,
    overwrite: bool = False,
    max_batch_size: int = 64,
    dynamic_spatial: bool = False,
    extra_inputs: list[np.ndarray] | None = None,
    output_name: str = "logits",
    random_check: bool = True,
) -> ModelCard:
    """Export, check and publish ``model`` as ``repo_root/<name>/<version>/model.onnx`` with its card.

    ``draft`` holds every card field but ``export``, ``versions``, ``created_at`` and ``git_commit``.
    Refuses to replace an existing version unless ``overwrite`` is set.
    Parity is checked on ``real_inputs``, a random batch of another size, and ``extra_inputs``
    (e.g. a second image size for a model with dynamic height and width); ``random_check=False`` leaves
    the random batch out, for models whose answer on noise is ill-conditioned (say why at the call).
    """
    model = model.cpu().eval()
    name = draft.name
    model_dir = repo_root / name
    version = next_version(model_dir) if version is None else version
    vdir = model_dir / str(version)
    if vdir.exists() and not overwrite:
        raise FileExistsError(f"{vdir} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / MODEL_FILE
        onnx_export(
            model, torch.from_numpy(real_inputs[:1]), tmp_path, output_name=output_name, dynamic_spatial=dynamic_spatial
        )
        rng = np.random.default_rng(0)
        random_batch = rng.standard_normal((3, *real_inputs.shape[1:])).astype(np.float32)
        checks = [real_inputs, *([random_batch] if random_check else []), *(extra_inputs or [])]
        diff = parity_check(model, tmp_path, checks)
        vdir.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp_path), vdir / MODEL_FILE)
    versions = {}
    if (model_dir / CARD_FILE).exists():  # keep the other versions' entries
        versions = dict(ModelCard.load(model_dir / CARD_FILE).versions)
    f = vdir / MODEL_FILE
    versions[version] = VersionFile(path=f"{version}/{MODEL_FILE}", sha256=sha256_file(f), bytes=f.stat().st_size)
    card = ModelCard(
        **draft.fields(),
        export=ExportInfo(
            exporter="torch.onnx.export(dynamo=False)",
            torch_version=torch.__version__,
            opset=OPSET,
            parity_max_abs_diff=diff,
            dynamic_axes=["batch"] + (["height", "width"] if dynamic_spatial else []),
        ),
        versions=versions,
        created_at=datetime.now(UTC).replace(microsecond=0),
        git_commit=git_commit(repo_root),
    )
    write_repository_files(model_dir, card, max_batch_size)
    return card
