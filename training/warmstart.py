"""Warm starts from a committed model: a new run that begins from the weights in ``models/``.

``runs/`` (checkpoints, optimiser state) does not travel between machines; the model repository
does. A long run that a later session continues elsewhere therefore starts from the committed ONNX
graph's weights (``--init-from models/<name>``), with a fresh optimiser and warm-up. That works for
graphs that keep every weight under its PyTorch name: every export since batch norm stays a node
(``training.export``), float16 storage included. Models exported earlier with batch norm folded into
the convolutions cannot, and are refused with the names they lack."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from modelrepo.repository import ModelEntry, check_model_dir


def _entry(path: Path) -> ModelEntry | None:
    """The model directory's entry (card, verified files), or None for a bare ``model.onnx``."""
    path = Path(path)
    if path.is_file():
        return None
    entry = check_model_dir(path)
    if not entry.ok:
        raise ValueError(f"{path} cannot initialise a run: {'; '.join(entry.problems)}")
    return entry


def model_file(path: Path) -> Path:
    """``model.onnx`` of a model directory's latest version, or ``path`` itself when it is a file."""
    entry = _entry(path)
    return Path(path) if entry is None else entry.version_path()


def _match(key: str, weights: dict[str, np.ndarray]) -> np.ndarray | None:
    """The initializer named ``key``, or ``<prefix>.key`` (an export wrapper's attribute), else None."""
    if key in weights:
        return weights[key]
    found = [v for name, v in weights.items() if name.endswith("." + key)]
    return found[0] if len(found) == 1 else None


def graph_weights(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Initializers by name, plus the names the graph gives them through ``Identity`` (the exporter
    shares equal tensors between parameters) and ``Cast`` (float16 storage, ``training.fp16_weights``),
    as float32."""
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type in ("Identity", "Cast") and len(node.input) == 1 and node.input[0] in weights:
            weights.setdefault(node.output[0], weights[node.input[0]])
    return {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in weights.items()}


@torch.no_grad()
def load_onnx_weights(model: nn.Module, path: Path) -> Path:
    """Copy the weights of an ONNX graph into ``model`` by name; every floating parameter and buffer
    must be found with its shape (else ValueError naming the missing ones). Returns the file used."""
    file = model_file(path)
    weights = graph_weights(onnx.load(str(file)).graph)
    state = model.state_dict()
    missing, loaded = [], {}
    for key, tensor in state.items():
        if not tensor.dtype.is_floating_point:
            continue
        w = _match(key, weights)
        if w is None or tuple(w.shape) != tuple(tensor.shape):
            missing.append(key)
        else:
            loaded[key] = torch.from_numpy(np.array(w, copy=True)).to(tensor.dtype)
    if missing:
        raise ValueError(
            f"{file} cannot initialise this network: {len(missing)} weights are not in the graph under their "
            f"names or shapes ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}); an export that "
            "folds batch norm or another architecture cannot be warm-started"
        )
    for key, value in loaded.items():
        state[key].copy_(value)
    return file


def prior_training(path: Path) -> dict:
    """What the committed model had been trained for (its card's ``hyperparameters``: steps, seconds),
    so a continued run's card counts all of it."""
    entry = _entry(path)
    hyper = entry.card.hyperparameters if entry is not None else {}
    return {
        "model": str(model_file(path)),
        "steps_done": hyper.get("steps_done"),
        "train_seconds": hyper.get("train_seconds"),
        "epochs_run": hyper.get("epochs_run"),
    }
