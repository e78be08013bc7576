"""VGG 11/13/16/19 (Simonyan & Zisserman, 2014), with and without BatchNorm.

State-dict keys and shapes equal torchvision's ``vgg*`` / ``vgg*_bn`` at the imagenet preset.
"""

from __future__ import annotations

import torch
from torch import nn

from training.nets.registry import register, scaled

# Numbers are conv output channels, "M" a 2x2 max-pool (the paper's configurations A, B, D, E).
_CFGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_features(cfg: list[int | str], in_channels: int, width: float, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    c = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        out = scaled(int(v), width)
        layers.append(nn.Conv2d(c, out, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU(inplace=True))
        c = out
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(
        self, features: nn.Sequential, out_channels: int, num_classes: int, hidden: int, pool: int, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((pool, pool))
        self.classifier = nn.Sequential(
            nn.Linear(out_channels * pool * pool, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))  # (B, C, pool, pool)
        return self.classifier(torch.flatten(x, 1))  # (B, num_classes)


# small: five pools take 32x32 to 1x1, so the head pools to 1x1 and is narrow; quarter width.
_PRESETS = {
    "imagenet": dict(width=1.0, hidden=4096, pool=7),
    "small": dict(width=0.25, hidden=256, pool=1),
}


def _vgg(cfg: str, batch_norm: bool, preset: str, num_classes: int, in_channels: int, **kw) -> VGG:
    p = {**_PRESETS[preset], **kw}
    width = p.pop("width")
    features = make_features(_CFGS[cfg], in_channels, width, batch_norm)
    return VGG(features, scaled(512, width), num_classes, **p)


@register("vgg", torchvision=True)
def vgg11(preset: str = "imagenet", num_classes: int = 1000, in_channels: int = 3, **kw) -> VGG:
    return _vgg("A", False, preset, num_classes, in_channels, **kw)


@register("vgg", torchvision=True)
def vgg13(preset: str = "imagenet", num_classes: int = 1000, in_channels: int = 3, **kw) -> VGG:
    return _vgg("B", False, preset, num_classes, in_channels, **kw)


@register("vgg", torchvision=True)
def vgg16(preset: str = "imagenet", num_classes: int = 1000, in_channels: int = 3, **kw) -> VGG:
    return _vgg("D", False, preset, num_classes, in_channels, **kw)


@register("vgg", torchvision=True)
def vgg19(preset: str = "imagenet", num_classes: int = 1000, in_channels: int = 3, **kw) -> VGG:
    return _vgg("E", False, preset, num_classes, in_channels, **kw)


@register("vgg", torchvision=True)
def vgg11_bn(preset: str = "imagenet", num_classes: int = 1000, in_channels: int = 3, **kw) -> VGG:
    return _vgg("A", True, preset, num_classes, in_channels, **kw)


@register("vgg", torchvision=True)
def vgg13_bn(preset: str = "imagenet", num_classes: int = 1000, in_channels: int = 3, **kw) -> VGG:
    return _vgg("B", True, preset, num_classes, in_channels, **kw)


@register("vgg", torchvision=True)
def vgg16_bn(preset: str = "imagenet", num_classes: int = 1000, in_channels: int = 3, **kw) -> VGG:
    return _vgg("D", True, preset, num_classes, in_channels, **kw)


@register("vgg", torchvision=True)
def vgg19_bn(preset: str = "imagenet", num_classes: int = 1000, in_channels: int = 3, **kw) -> VGG:
    return _vgg("E", True, preset, num_classes, in_channels, **kw)
