"""The committed default models: one digits classifier per family (``make models`` retrains them)."""

from __future__ import annotations

from training.tasks.classify import ClassifyConfig
from training.tasks.denoise import DenoiseConfig
from training.tasks.nowcast import NowcastConfig
from training.tasks.segment import SegmentConfig

DEFAULT_CLASSIFIERS: dict[str, ClassifyConfig] = {
    c.model_name: c
    for c in [
        ClassifyConfig(arch="lenet5", name="lenet5_digits", epochs=50, lr=3e-3, patience=15),
        ClassifyConfig(arch="alexnet", name="alexnet_digits", epochs=30, lr=1e-3, patience=15),
        ClassifyConfig(arch="vgg11_bn", name="vgg11_bn_digits", epochs=30, lr=2e-3, patience=15),
        ClassifyConfig(arch="googlenet", name="googlenet_digits", epochs=25, lr=2e-3, patience=15),
        ClassifyConfig(arch="resnet20", name="resnet20_digits", epochs=50, lr=2e-3, patience=15),
    ]
}

DEFAULT_SEGMENTERS: dict[str, SegmentConfig] = {"unet_cells": SegmentConfig(name="unet_cells")}

DEFAULT_DENOISERS: dict[str, DenoiseConfig] = {"unet_denoise_gray": DenoiseConfig(name="unet_denoise_gray")}

DEFAULT_NOWCASTERS: dict[str, NowcastConfig] = {"unet_nowcast": NowcastConfig(name="unet_nowcast")}
