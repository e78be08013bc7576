"""Shared fixtures: small data the tests make, and the repository paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
FIXTURES = Path(__file__).parent / "fixtures"


def make_bars_folder(root: Path, per_class: int = 30, size: int = 20, seed: int = 0) -> Path:
    """An ImageFolder tree with three easy classes: horizontal bar, vertical bar, blob; RGB PNGs."""
    rng = np.random.default_rng(seed)
    for cls in ("horizontal", "vertical", "blob"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 40, (size, size, 3)).astype(np.uint8)
            c = int(rng.integers(5, size - 5))
            colour = rng.integers(150, 256, 3).astype(np.uint8)
            if cls == "horizontal":
                img[c - 2 : c + 2, 2:-2] = colour
            elif cls == "vertical":
                img[2:-2, c - 2 : c + 2] = colour
            else:
                img[c - 4 : c + 4, c - 4 : c + 4] = colour
            Image.fromarray(img).save(root / cls / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def bars_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bars_folder(tmp_path_factory.mktemp("bars"))
