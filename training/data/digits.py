"""scikit-learn's bundled handwritten digits: 1,797 real 8x8 images, ten classes.

The 0..16 intensities become 8-bit grayscale images (0..255, white ink on black); the model card
then upsamples them to 32x32 like any other image. The split is fixed and documented: stratified,
20 % test and 10 % validation of the whole set, ``random_state=seed`` (default 0), giving
1,257 / 180 / 360 images.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from training.data.common import Splits, stratified_split

SOURCE = "sklearn.datasets.load_digits"
FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


def load_digits_splits(seed: int = 0) -> Splits:
    d = load_digits()
    images = [np.round(im * (255 / 16)).astype(np.uint8) for im in d.images]  # (8, 8) uint8
    train, val, test = stratified_split(images, d.target, FRACTIONS["val"], FRACTIONS["test"], seed)
    return Splits(
        train,
        val,
        test,
        classes=[str(c) for c in d.target_names],
        color_mode="L",
        source=SOURCE,
        description="UCI ML hand-written digits (scikit-learn bundle), 8x8 grayscale, 0..16 scaled to 0..255",
        fractions=FRACTIONS,
        seed=seed,
        augmentation={"rotate_deg": 10.0, "translate": 0.08, "scale": (0.9, 1.1), "hflip": False},
    )
