"""ResNet (He et al., 2015): ImageNet ResNet-18/34/50/101/152, the CIFAR-style ResNet-20/32/56,
and the seed's ``ResNet(ResidualBlock, [2, 2, 2])``.

The ImageNet family's state-dict keys and shapes equal torchvision's ``resnet*`` (stride on the
3x3 conv of a Bottleneck, "ResNet v1.5"). The CIFAR family (three stages of 16/32/64 channels,
6n+2 layers) uses 1x1-conv projection shortcuts (the paper's option B) where shapes change.
"""

from __future__ import annotations

import torch
from torch import nn

from training.nets.registry import register, scaled


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or projected) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        # Both self.conv1 and self.downsample downsample the input when stride != 1
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand (x4), stride on the 3x3 conv."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


Block = type[BasicBlock] | type[Bottleneck]


class ResNet(nn.Module):
    """A stem, one stage per entry of ``layers`` (stage i has ``widths[i]`` planes), pool, linear."""

    def __init__(
        self,
        block: Block,
        layers: list[int],
        widths: list[int],
        num_classes: int,
        in_channels: int,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        self.inplanes = widths[0]
        if stem == "imagenet":  # 7x7 stride 2 + max-pool: 224 -> 56
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:  # "cifar": one 3x3 conv, no pool, for 32x32 inputs
            self.conv1 = conv3x3(in_channels, self.inplanes)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        stages = [
            self._make_layer(block, w, n, stride=1 if i == 0 else 2) for i, (w, n) in enumerate(zip(widths, layers))
        ]
        for i, stage in enumerate(stages):
            self.add_module(f"layer{i + 1}", stage)
        self.num_stages = len(stages)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))  # (B, num_classes)


# ImageNet family. small: the CIFAR stem for 32x32 inputs, quarter width (16/32/64/128 planes).
_IMAGENET_PRESETS = {"imagenet": dict(width=1.0, stem="imagenet"), "small": dict(width=0.25, stem="cifar")}


def _resnet(block: Block, layers: list[int], preset: str, num_classes: int, in_channels: int, **kw) -> ResNet:
    p = {**_IMAGENET_PRESETS[preset], **kw}
    width = p.pop("width")
    widths = [scaled(w, width) for w in (64, 128, 256, 512)]
    return ResNet(block, layers, widths, num_classes, in_channels, **p)


def _cifar_resnet(layers: list[int], num_classes: int, in_channels: int, width: float = 1.0) -> ResNet:
    widths = [scaled(w, width) for w in (16, 32, 64)]
    return ResNet(BasicBlock, layers, widths, num_classes, in_channels, stem="cifar")


@register("resnet", torchvision=True)
def resnet18(preset: str = "imagenet", num_classes: int = 1000, in_channels: int = 3, **kw) -> ResNet:
    return _resnet(BasicBlock, [2, 2, 2, 2], preset, num_classes, in_channels, **kw)


@register("resnet", torchvision=True)
def resnet34(preset: str = "imagenet", num_classes: int = 1000, in_channels: int = 3, **kw) -> ResNet:
    return _resnet(BasicBlock, [3, 4, 6, 3], preset, num_classes, in_channels, **kw)


@register("resnet", torchvision=True)
def resnet50(preset: str = "imagenet", num_classes: int = 1000, in_channels: int = 3, **kw) -> ResNet:
    return _resnet(Bottleneck, [3, 4, 6, 3], preset, num_classes, in_channels, **kw)


@register("resnet", torchvision=True)
def resnet101(preset: str = "imagenet", num_classes: int = 1000, in_channels: int = 3, **kw) -> ResNet:
    return _resnet(Bottleneck, [3, 4, 23, 3], preset, num_classes, in_channels, **kw)


@register("resnet", torchvision=True)
def resnet152(preset: str = "imagenet", num_classes: int = 1000, in_channels: int = 3, **kw) -> ResNet:
    return _resnet(Bottleneck, [3, 8, 36, 3], preset, num_classes, in_channels, **kw)


@register("resnet", presets=("small",))
def resnet20(preset: str = "small", num_classes: int = 10, in_channels: int = 3, **kw) -> ResNet:
    return _cifar_resnet([3, 3, 3], num_classes, in_channels, **kw)


@register("resnet", presets=("small",))
def resnet32(preset: str = "small", num_classes: int = 10, in_channels: int = 3, **kw) -> ResNet:
    return _cifar_resnet([5, 5, 5], num_classes, in_channels, **kw)


@register("resnet", presets=("small",))
def resnet56(preset: str = "small", num_classes: int = 10, in_channels: int = 3, **kw) -> ResNet:
    return _cifar_resnet([9, 9, 9], num_classes, in_channels, **kw)


@register("resnet", presets=("small",))
def resnet_seed(preset: str = "small", num_classes: int = 10, in_channels: int = 3, **kw) -> ResNet:
    """The seed notebook's ``ResNet(ResidualBlock, [2, 2, 2])``: 16/32/64 channels, 2 blocks each."""
    return _cifar_resnet([2, 2, 2], num_classes, in_channels, **kw)
