"""AlexNet (Krizhevsky et al., 2012) in the lecture's form: (CNN -> RN -> MP)^2 -> (CNN^3 -> MP)
-> (FC -> DO)^2 -> Linear, where RN is the ReLU followed by an optional LocalResponseNorm.

State-dict keys and shapes equal torchvision's ``alexnet`` (``features.0`` ... ``classifier.6``),
so ImageNet weights saved from torchvision load with ``load_state_dict``. LRN has no parameters
and sits inside the ReLU slot, so switching it on changes no key.
"""

from __future__ import annotations

import torch
from torch import nn

from training.nets.registry import register, scaled


def _relu_norm(lrn: bool) -> nn.Module:
    if not lrn:
        return nn.ReLU(inplace=True)
    # The 2012 paper's constants: size 5, alpha 1e-4, beta 0.75, k 2.
    return nn.Sequential(nn.ReLU(inplace=True), nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0))


class AlexNet(nn.Module):
    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        stem: tuple[int, int, int],
        width: float,
        hidden: int,
        pool: int,
        lrn: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        c = [scaled(n, width) for n in (64, 192, 384, 256, 256)]
        k, s, p = stem
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c[0], kernel_size=k, stride=s, padding=p),
            _relu_norm(lrn),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c[0], c[1], kernel_size=5, padding=2),
            _relu_norm(lrn),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c[1], c[2], kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[2], c[3], kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[3], c[4], kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((pool, pool))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(c[4] * pool * pool, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))  # (B, C, pool, pool)
        return self.classifier(torch.flatten(x, 1))  # (B, num_classes)


# imagenet: the 2012 stem (11x11, stride 4) on 224x224; small: a 3x3 stride-1 stem for 32x32
# (32 -> 15 -> 7 -> 3 after the three pools) at half width.
_PRESETS = {
    "imagenet": dict(stem=(11, 4, 2), width=1.0, hidden=4096, pool=6),
    "small": dict(stem=(3, 1, 1), width=0.5, hidden=512, pool=3),
}


@register("alexnet", torchvision=True)
def alexnet(preset: str = "imagenet", num_classes: int = 1000, in_channels: int = 3, **kw) -> AlexNet:
    return AlexNet(num_classes, in_channels, **{**_PRESETS[preset], **kw})
