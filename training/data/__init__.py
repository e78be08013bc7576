"""Datasets for training: bundled real data, generated data and user folders."""

from training.data.common import ImageSet, Splits, stratified_split
from training.data.digits import load_digits_splits
from training.data.folder import load_image_folder

__all__ = ["ImageSet", "Splits", "stratified_split", "load_digits_splits", "load_image_folder", "load_splits"]


def load_splits(name: str, root: str | None = None, seed: int = 0, color_mode: str = "RGB") -> Splits:
    """``digits`` (scikit-learn's bundled digits) or ``folder`` (an ImageFolder tree at ``root``)."""
    if name == "digits":
        return load_digits_splits(seed=seed)
    if name == "folder":
        if root is None:
            raise ValueError("--data folder needs --data-dir")
        return load_image_folder(root, seed=seed, color_mode=color_mode)
    raise ValueError(f"unknown dataset {name!r} (digits | folder)")
