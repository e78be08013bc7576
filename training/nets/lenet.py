"""LeNet-5 (LeCun et al., 1998), the classic 32x32 layout with 61,706 parameters.

C1 conv 5x5 (6) -> S2 avg-pool -> C3 conv 5x5 (16) -> S4 avg-pool -> C5 conv 5x5 (120)
-> F6 linear (84) -> output (10), tanh after every layer but the last.

What the 1998 original did differently:
- C3 was only partially connected to S2 (10 of the 16 maps saw 3 or 4 of the 6 input maps; a
  fixed connection table) to break symmetry and save parameters; here C3 sees all 6 maps.
- S2 and S4 were trainable: each map's 2x2 sum was multiplied by a learned coefficient, a bias was
  added and a sigmoid applied; here they are plain average pools.
- The output layer was a set of Euclidean RBF units with fixed ±1 "stylised digit" codes and a
  loss on their distances; here it is a linear layer trained with softmax cross entropy.
- It used a scaled tanh (1.7159 tanh(2x/3)); here it is plain tanh.
"""

from __future__ import annotations

import torch
from torch import nn

from training.nets.registry import register


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5),  # C1: (B, 6, 28, 28)
            nn.Tanh(),
            nn.AvgPool2d(2),  # S2: (B, 6, 14, 14)
            nn.Conv2d(6, 16, kernel_size=5),  # C3: (B, 16, 10, 10)
            nn.Tanh(),
            nn.AvgPool2d(2),  # S4: (B, 16, 5, 5)
            nn.Conv2d(16, 120, kernel_size=5),  # C5: (B, 120, 1, 1)
            nn.Tanh(),
        )
        self.classifier = nn.Sequential(nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))  # (B, num_classes)


@register("lenet", presets=("small",))
def lenet5(preset: str = "small", num_classes: int = 10, in_channels: int = 1) -> LeNet5:
    """LeNet-5 for 32x32 inputs (the ``small`` preset only: it has no ImageNet form)."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels)
