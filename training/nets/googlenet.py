"""GoogLeNet / Inception v1 (Szegedy et al., 2014): Inception blocks with 1x1 reductions.

State-dict keys and shapes equal torchvision's ``googlenet`` (``aux_logits=False`` for the
published 6,624,904 parameters; ``True`` adds ``aux1``/``aux2``). Like torchvision, the "5x5"
branch uses a 3x3 kernel, so torchvision's ImageNet weights load; the paper used 5x5.
The auxiliary heads only run in training mode (their loss is added with weight 0.3); in eval
mode - and so in the exported ONNX graph - the network returns the main logits alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.nets.registry import register, scaled


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four parallel branches (1x1 | 1x1->3x3 | 1x1->"5x5" | pool->1x1), concatenated."""

    def __init__(
        self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),  # 3x3, as torchvision's weights
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, 1)  # (B, out_channels, H, W)


class InceptionAux(nn.Module):
    """Auxiliary classifier on an intermediate feature map (training only)."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0, dropout: float = 0.7) -> None:
        super().__init__()
        c, hidden = scaled(128, width), scaled(1024, width)
        self.conv = BasicConv2d(in_channels, c, kernel_size=1)
        self.fc1 = nn.Linear(c * 4 * 4, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))  # (B, c, 4, 4)
        x = F.relu(self.fc1(torch.flatten(x, 1)), inplace=True)
        return self.fc2(self.dropout(x))  # (B, num_classes)


# (ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) per block, from the paper's table 1.
_BLOCKS = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


class GoogLeNet(nn.Module):
    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        width: float,
        small_stem: bool,
        aux_logits: bool = True,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()

        def block(name: str, c_in: int) -> Inception:
            return Inception(c_in, *(scaled(c, width) for c in _BLOCKS[name]))

        c64, c192 = scaled(64, width), scaled(192, width)
        if small_stem:  # 32x32: a 3x3 stride-1 stem and one pool, so Inception 3 sees 16x16
            self.conv1 = BasicConv2d(in_channels, c64, kernel_size=3, padding=1)
            self.maxpool1: nn.Module = nn.Identity()
        else:  # 224x224: the paper's 7x7 stride-2 stem, two pools, Inception 3 sees 28x28
            self.conv1 = BasicConv2d(in_channels, c64, kernel_size=7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(c64, c64, kernel_size=1)
        self.conv3 = BasicConv2d(c64, c192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = block("3a", c192)
        self.inception3b = block("3b", self.inception3a.out_channels)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = block("4a", self.inception3b.out_channels)
        self.inception4b = block("4b", self.inception4a.out_channels)
        self.inception4c = block("4c", self.inception4b.out_channels)
        self.inception4d = block("4d", self.inception4c.out_channels)
        self.inception4e = block("4e", self.inception4d.out_channels)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = block("5a", self.inception4e.out_channels)
        self.inception5b = block("5b", self.inception5a.out_channels)
        self.aux1 = InceptionAux(self.inception4a.out_channels, num_classes, width) if aux_logits else None
        self.aux2 = InceptionAux(self.inception4d.out_channels, num_classes, width) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(self.inception5b.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eval: logits (B, num_classes). Training with aux heads: (logits, aux1, aux2)."""
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.dropout(torch.flatten(self.avgpool(x), 1))  # (B, C)
        logits = self.fc(x)
        if aux1 is not None and aux2 is not None:
            return logits, aux1, aux2
        return logits


_PRESETS = {
    "imagenet": dict(width=1.0, small_stem=False),
    "small": dict(width=0.25, small_stem=True),
}


@register("googlenet", torchvision=True)
def googlenet(preset: str = "imagenet", num_classes: int = 1000, in_channels: int = 3, **kw) -> GoogLeNet:
    return GoogLeNet(num_classes, in_channels, **{**_PRESETS[preset], **kw})
