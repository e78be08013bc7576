"""Image sets as uint8 arrays with labels, and a reproducible stratified split."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import train_test_split


@dataclass
class ImageSet:
    images: list[np.ndarray]  # uint8, (H, W) or (H, W, C)
    labels: np.ndarray  # int64, (N,)

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class Splits:
    train: ImageSet
    val: ImageSet
    test: ImageSet
    classes: list[str]
    color_mode: str  # "L" or "RGB"
    source: str
    description: str
    fractions: dict[str, float]
    seed: int
    augmentation: dict = field(default_factory=dict)

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def stratified_split(
    images: list[np.ndarray], labels: np.ndarray, val: float, test: float, seed: int
) -> tuple[ImageSet, ImageSet, ImageSet]:
    """Stratified train/val/test split; ``val`` and ``test`` are fractions of the whole set."""
    idx = np.arange(len(labels))
    rest, test_idx = train_test_split(idx, test_size=test, stratify=labels, random_state=seed)
    train_idx, val_idx = train_test_split(rest, test_size=val / (1 - test), stratify=labels[rest], random_state=seed)

    def subset(ix: np.ndarray) -> ImageSet:
        ix = np.sort(ix)
        return ImageSet([images[i] for i in ix], labels[ix].astype(np.int64))

    return subset(train_idx), subset(val_idx), subset(test_idx)
