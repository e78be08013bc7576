"""Geometric self-ensemble (test-time augmentation) for any-size networks: each batch the network gets
is also run flipped / rotated, each answer is turned back and the answers are averaged (Lim et al. 2017,
"EDSR"; cellpose's ``augment``). For a denoiser or a segmenter the network's errors differ between the
copies while the truth does not, so the mean is closer to it; n passes cost n x the time.

``ensembled(infer, n)`` wraps any coroutine from an (N, C, h, w) batch to (N, C', h, w) outputs; the
shared paths (``modelrepo.denoising``, ``modelrepo.cellseg``) wrap their network with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np

Infer = Callable[[np.ndarray], Awaitable[np.ndarray]]

# ensemble size -> dihedral transforms (k: k % 4 quarter turns, then a left-right flip if k >= 4);
# 2 and 4 keep a tile's shape (identity, half turn, both flips)
ENSEMBLES: dict[int, tuple[int, ...]] = {1: (0,), 2: (0, 2), 4: (0, 2, 4, 6), 8: tuple(range(8))}


def dihedral(x: np.ndarray, k: int, inverse: bool = False, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Transform ``k`` of the dihedral group (see ENSEMBLES) over two axes of ``x``, or its inverse."""
    flip = (slice(None),) * axes[1] + (slice(None, None, -1),)
    if inverse:
        x = x[flip] if k >= 4 else x
        return np.rot90(x, -(k % 4), axes=axes)
    x = np.rot90(x, k % 4, axes=axes)
    return x[flip] if k >= 4 else x


def ensembled(infer: Infer, n: int) -> Infer:
    """``infer`` run on ``n`` (1, 2, 4 or 8) flipped / rotated copies of each batch, the outputs turned
    back and averaged."""
    if n not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {sorted(ENSEMBLES)}, got {n}")
    if n == 1:
        return infer

    async def run(batch: np.ndarray) -> np.ndarray:
        total = None
        for k in ENSEMBLES[n]:
            y = await infer(np.ascontiguousarray(dihedral(batch, k, axes=(2, 3))))
            y = dihedral(y, k, inverse=True, axes=(2, 3))
            total = y if total is None else total + y
        return (total / n).astype(np.float32)

    return run
