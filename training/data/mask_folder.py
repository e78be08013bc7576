"""User data for segmentation: a folder of image/mask pairs.

Layout: ``root/images/<name>.png|tif|tiff`` and ``root/masks/<name>.png|tif|tiff`` (same stem).
Masks hold class ids (0 background, 1 cell, 2 border) or instance ids (0 background, 1..N).
``mask_kind="auto"`` takes a mask with values within {0, 1, 2} as class ids and anything else as
instance ids; pass ``classes`` or ``instances`` when a mask could be read either way. If ``root``
has ``train/``, ``val/`` and ``test/`` subfolders (each with images/ and masks/), those splits are
used; otherwise the pairs are split 70/10/20 by seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from modelrepo.preprocess import intensities
from modelrepo.segmentation import instances_from_classes, relabel
from training.data.cells import CellImage, classes_from_instances

EXTENSIONS = (".png", ".tif", ".tiff")


def _read(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        a = tifffile.imread(path)
        return a if a.ndim == 2 else a[..., 0] if a.shape[-1] in (3, 4) else a[0]
    with Image.open(path) as im:
        return np.asarray(im) if im.mode.startswith("I") or im.mode in ("L", "F") else intensities(im)


def _pair(image: np.ndarray, mask: np.ndarray, kind: str) -> CellImage:
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(f"image {image.shape} and mask {mask.shape} differ in size")
    values = set(np.unique(mask).tolist())
    as_classes = kind == "classes" or (kind == "auto" and values <= {0, 1, 2})
    if as_classes:
        classes = mask.astype(np.uint8)
        instances = instances_from_classes(classes, 1, 2)
    else:
        instances = relabel(mask.astype(np.int64))
        classes = classes_from_instances(instances)
    return CellImage(image, instances.astype(np.int32), classes)


def load_pairs(root: Path, kind: str = "auto") -> list[CellImage]:
    images, masks = root / "images", root / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise ValueError(f"{root} needs images/ and masks/ folders")
    out = []
    for f in sorted(p for p in images.iterdir() if p.suffix.lower() in EXTENSIONS):
        m = next((masks / (f.stem + e) for e in EXTENSIONS if (masks / (f.stem + e)).exists()), None)
        if m is None:
            raise ValueError(f"no mask for {f.name} in {masks}")
        out.append(_pair(_read(f), _read(m), kind))
    if not out:
        raise ValueError(f"no images in {images}")
    return out


def load_mask_folder(root: str | Path, seed: int = 0, kind: str = "auto") -> dict[str, list[CellImage]]:
    root = Path(root)
    if all((root / s).is_dir() for s in ("train", "val", "test")):
        return {s: load_pairs(root / s, kind) for s in ("train", "val", "test")}
    pairs = load_pairs(root, kind)
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_test, n_val = max(1, round(0.2 * len(pairs))), max(1, round(0.1 * len(pairs)))
    pick = lambda ix: [pairs[i] for i in sorted(ix)]  # noqa: E731
    return {
        "test": pick(order[:n_test]),
        "val": pick(order[n_test : n_test + n_val]),
        "train": pick(order[n_test + n_val :]),
    }
