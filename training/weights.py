"""Loading pretrained weights (e.g. torchvision ImageNet ``.pth`` files) into a registry network."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def load_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Load a state dict saved with ``torch.save(model.state_dict())`` (tensors only, no pickle code).

    Keys must match the network's; tensors whose shape differs (a classifier head for another
    number of classes, a stem for other channels) are skipped and returned, so fine-tuning on a
    new label set starts from the pretrained body. Missing or unexpected keys are an error.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:  # our own checkpoints
        state = state["state_dict"]
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{path}: state-dict keys do not match this network (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    skipped = [k for k in own if state[k].shape != own[k].shape]
    model.load_state_dict({k: v for k, v in state.items() if k not in skipped}, strict=False)
    return skipped
