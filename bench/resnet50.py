"""ResNet-50 for the benchmark: imagenet preset, random weights (seed 0), exported with an ImageNet-style
card into a temporary model repository. The speed of a forward pass does not depend on the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_resnet50_repo(root: Path) -> Path:
    """Export ResNet-50 (imagenet preset, random weights, seed 0) with an ImageNet-style card."""
    import torch

    from modelrepo.card import Architecture, CardDraft, DataProvenance, InputSpec, OutputSpec
    from training.export import export_to_repository
    from training.nets import build

    torch.manual_seed(0)
    model = build("resnet50", preset="imagenet").eval()
    spec = InputSpec(
        color_mode="RGB",
        channels=3,
        height=224,
        width=224,
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
        resize="shorter_side_center_crop",
    )
    fields = dict(
        name="resnet50_random",
        task="classification",
        description="ResNet-50 with random weights (benchmark only)",
        architecture=Architecture(
            name="resnet50",
            family="resnet",
            preset="imagenet",
            num_parameters=sum(p.numel() for p in model.parameters()),
        ),
        input=spec,
        output=OutputSpec(kind="logits", shape=[1000], postprocess="softmax"),
        labels=[f"class_{i}" for i in range(1000)],
        training=DataProvenance(source="none (random weights)", split={}, sizes={}, seed=0),
        metrics={"accuracy": 0.001},
    )
    real = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    export_to_repository(model, CardDraft(**fields), root, real, max_batch_size=32)
    return root / "resnet50_random"
