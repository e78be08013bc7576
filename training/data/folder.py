"""User data: an ImageFolder-style tree, ``root/<class>/*.png|jpg|...``.

If ``root`` holds ``train/``, ``val/`` and ``test/`` folders, those splits are used as given;
otherwise one class tree is split (stratified 70/10/20, by seed). Images are loaded into memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from training.data.common import ImageSet, Splits, stratified_split

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


def _classes(root: Path) -> list[str]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root} has no class folders (expected root/<class>/<image>)")
    return classes


def _read_tree(root: Path, classes: list[str], color_mode: str) -> tuple[list[np.ndarray], np.ndarray]:
    images, labels = [], []
    for label, cls in enumerate(classes):
        cdir = root / cls
        if not cdir.is_dir():
            continue
        for f in sorted(cdir.iterdir()):
            if f.suffix.lower() in EXTENSIONS:
                with Image.open(f) as im:
                    images.append(np.asarray(im.convert(color_mode)))
                labels.append(label)
    if not images:
        raise ValueError(f"no images under {root}")
    return images, np.asarray(labels, dtype=np.int64)


def load_image_folder(root: str | Path, seed: int = 0, color_mode: str = "RGB") -> Splits:
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    presplit = all((root / s).is_dir() for s in ("train", "val", "test"))
    if presplit:
        classes = _classes(root / "train")
        train, val, test = (ImageSet(*_read_tree(root / s, classes, color_mode)) for s in ("train", "val", "test"))
        fractions = {}
    else:
        classes = _classes(root)
        images, labels = _read_tree(root, classes, color_mode)
        train, val, test = stratified_split(images, labels, FRACTIONS["val"], FRACTIONS["test"], seed)
        fractions = FRACTIONS
    return Splits(
        train,
        val,
        test,
        classes=classes,
        color_mode=color_mode,
        source=f"folder:{root.resolve()}",
        description=f"ImageFolder tree at {root} ({'given train/val/test' if presplit else 'split by seed'})",
        fractions=fractions,
        seed=seed,
        augmentation={"rotate_deg": 10.0, "translate": 0.08, "scale": (0.9, 1.1), "hflip": True},
    )
