"""Warm starts from a committed model: a new run that begins from the weights in ``models/``.

``runs/`` (checkpoints, optimiser state) does not travel between machines; the model repository
does. A long run that a later session continues elsewhere therefore starts from the committed ONNX
graph's weights (``--init-from models/<name>``), with a fresh optimiser and warm-up. That works for
graphs that keep every weight under its PyTorch name: every export since batch norm stays a node
(``training.export``), float16 storage included. Models exported earlier with batch norm folded into
the convolutions are matched convolution by convolution instead (``_unfolded``: the folded kernel and
bias, the batch norm as the identity); another architecture is refused with the names it lacks."""

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


_HEADS = ("outc.",)  # output layers that a new run may widen (a segmenter's added distance channel)


def _grows(committed: tuple[int, ...], wanted: torch.Size) -> bool:
    """The network's tensor is the committed one with more leading rows (output channels)."""
    return len(committed) == len(wanted) and committed[1:] == tuple(wanted[1:]) and committed[0] < wanted[0]


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
    missing, loaded, grown = [], {}, []
    for key, tensor in state.items():
        if not tensor.dtype.is_floating_point:
            continue
        w = _match(key, weights)
        if w is not None and _grows(w.shape, tensor.shape) and key.startswith(_HEADS):
            grown.append(key)  # a head with more outputs than the committed one: its rows, then the new ones
            w = np.concatenate([w, tensor[w.shape[0] :].numpy()])
        if w is None or tuple(w.shape) != tuple(tensor.shape):
            missing.append(key)
        else:
            loaded[key] = torch.from_numpy(np.array(w, copy=True)).to(tensor.dtype)
    if grown:
        print(f"output head grown: {', '.join(grown)} (the committed outputs kept, the new ones as initialised)")
    if missing:
        graph = onnx.load(str(file)).graph
        unfolded = _unfolded(model, graph, weights)
        if unfolded is None:
            raise ValueError(
                f"{file} cannot initialise this network: {len(missing)} weights are not in the graph under their "
                f"names or shapes ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}), and its "
                "convolutions do not match the network's one for one, in order and shape"
            )
        loaded = unfolded
    for key, value in loaded.items():
        state[key].copy_(value)
    return file


def _unfolded(model: nn.Module, graph: onnx.GraphProto, weights: dict[str, np.ndarray]) -> dict | None:
    """An export that folded each batch norm into the convolution before it (graphs exported before
    batch norm stayed a node): the graph's Conv nodes, in order, against the network's convolutions, in
    order, shape for shape. Each convolution gets the folded kernel and bias; its batch norm becomes the
    identity (scale 1, shift 0, running mean 0, running variance 1 - eps) - the same function in eval
    mode, and a starting point that training re-normalises. None when they do not match one for one or a
    weight outside them is missing."""
    convs = [(n.input[1], n.input[2] if len(n.input) > 2 else None) for n in graph.node if n.op_type == "Conv"]
    names = {id(m): name for name, m in model.named_modules()}
    layers, norm_of, last = [], {}, None
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            layers.append(m)
            last = m
        elif isinstance(m, nn.BatchNorm2d) and last is not None:
            norm_of[id(last)] = m
            last = None
    if len(convs) != len(layers):
        return None
    loaded: dict[str, torch.Tensor] = {}
    for (w_name, b_name), conv in zip(convs, layers):
        w = weights.get(w_name)
        b = weights.get(b_name) if b_name else np.zeros(conv.out_channels, np.float32)
        if w is None or b is None or tuple(w.shape) != tuple(conv.weight.shape):
            return None
        prefix = names[id(conv)]
        loaded[f"{prefix}.weight"] = torch.from_numpy(np.array(w, copy=True))
        norm = norm_of.get(id(conv))
        shift = torch.from_numpy(np.array(b, copy=True))
        if conv.bias is not None:
            loaded[f"{prefix}.bias"], shift = shift, torch.zeros_like(shift)
        if norm is not None:
            n = names[id(norm)]
            loaded |= {f"{n}.weight": torch.ones_like(shift), f"{n}.bias": shift}
            loaded |= {f"{n}.running_mean": torch.zeros_like(shift), f"{n}.running_var": 1 - norm.eps + 0 * shift}
        elif conv.bias is None and shift.abs().max() > 0:
            return None  # a folded shift with nowhere to go
    floating = {k for k, t in model.state_dict().items() if t.dtype.is_floating_point}
    rest = floating - set(loaded)
    for key in rest:  # anything else (a learned scalar, a linear layer) by name, as before
        w = _match(key, weights)
        if w is None or tuple(w.shape) != tuple(model.state_dict()[key].shape):
            return None
        loaded[key] = torch.from_numpy(np.array(w, copy=True))
    return loaded


@torch.no_grad()
def calibrate_unfolded_norms(model: nn.Module, x: torch.Tensor) -> int:
    """Batch norms left as the identity by ``_unfolded`` (scale 1, running mean 0, variance 1 - eps) get
    running statistics from a batch of training inputs ``x``, with scale and shift set so that the
    function in eval mode stays exactly the same: in training mode, where a batch's own statistics
    normalise, the network then starts near the committed one instead of from renormalised activations.
    Returns how many were calibrated."""
    identity = [
        m
        for m in model.modules()
        if isinstance(m, nn.BatchNorm2d)
        and m.running_mean is not None
        and bool((m.running_mean == 0).all() and (m.running_var == 1 - m.eps).all() and (m.weight == 1).all())
    ]
    if not identity:
        return 0
    stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(m, inputs, _output) -> None:
        y = inputs[0].transpose(0, 1).flatten(1)  # (C, N * H * W)
        stats[id(m)] = (y.mean(dim=1), y.var(dim=1))

    handles = [m.register_forward_hook(hook) for m in identity]
    was_training = model.training
    try:
        model.eval()
        model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    for m in identity:
        mean, var = stats[id(m)]
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
        m.bias.copy_(m.bias + mean)
        m.weight.copy_(torch.sqrt(var + m.eps))
    return len(identity)


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
