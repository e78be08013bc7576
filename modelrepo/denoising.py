"""Denoising one image end to end, as the service, training's evaluation and ``make eval`` all do it:

(H, W, C) in [0, 1] -> planes the network takes (a gray model runs each colour plane; a colour model
gets a gray image as three equal planes) -> padded to the network's multiple -> overlapping tiles,
each with its noise-level map, blended with feathered weights -> back to (H, W, C). With a self-ensemble
(``modelrepo.ensemble``) each tile also runs flipped / rotated and the turned-back answers are averaged.

``infer`` is any coroutine from a float32 batch (N, C + 1, h, w) to images (N, C, h, w): the service
passes its dynamic batcher, evaluation an ONNX Runtime session. No framework here.

``stride`` 2 is pixel-shuffle down-sampling (Zhou et al. 2020, "When AWGN-based denoiser meets
real noises"): the image split into its stride x stride sub-images (every other pixel), each denoised,
interleaved back. Camera noise is spatially correlated - demosaicing spreads each sensor pixel's noise
over its neighbours - and a network trained on white noise takes it for texture; two pixels apart it is
close to white again. On white noise it costs (the sub-images lose detail): the caller chooses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from modelrepo.card import InputSpec
from modelrepo.ensemble import ensembled
from modelrepo.preprocess import pad_to_multiple, with_noise_level
from modelrepo.tiles import tile_origins

Infer = Callable[[np.ndarray], Awaitable[np.ndarray]]
SHUFFLE_STRIDE = 2  # the pixel-shuffle stride camera noise is denoised at (``/denoise?pd=true``)

TILE, OVERLAP = 512, 32  # the service's default tile size and overlap (px), and what evaluation uses


def feather(n: int, overlap: int) -> np.ndarray:
    """1-D blending weights: ramps over ``overlap`` px at both ends, never zero."""
    i = np.arange(n, dtype=np.float32)
    return np.minimum(1.0, np.minimum(i + 1, n - i) / (overlap + 1))


def _planes(x: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, c) -> (n, channels, H, W) for a model of ``channels`` input channels."""
    if channels == 1:
        return x.transpose(2, 0, 1)[:, None]  # each plane on its own
    planes = x.transpose(2, 0, 1)[None]
    return np.repeat(planes, channels, axis=1) if x.shape[2] == 1 else planes


async def denoise(
    infer: Infer,
    x: np.ndarray,
    spec: InputSpec,
    sigma_255: float,
    tile: int,
    overlap: int,
    group: int = 1,
    ensemble: int | None = None,
    stride: int = 1,
) -> np.ndarray:
    """Denoise x (H, W, C) in [0, 1] at noise level ``sigma_255`` (0-255 scale); tiles of at most
    ``tile`` px sharing ``overlap`` px, ``group`` tiles per call; the mean over an ``ensemble`` of
    1, 2, 4 or 8 flipped / rotated passes (default: the spec's). ``stride`` > 1: each of the stride x
    stride sub-images x[i::stride, j::stride] denoised so (concurrently: a batcher may run them together)
    and interleaved back."""
    if stride > 1:
        offsets = [(i, j) for i in range(stride) for j in range(stride)]
        subs = [np.ascontiguousarray(x[i::stride, j::stride]) for i, j in offsets]
        parts = await asyncio.gather(
            *(denoise(infer, a, spec, sigma_255, tile, overlap, group, ensemble) for a in subs)
        )
        y = np.empty(x.shape, np.float32)
        for (i, j), part in zip(offsets, parts):
            y[i::stride, j::stride] = part
        return y
    infer = ensembled(infer, spec.ensemble if ensemble is None else ensemble)
    h, w, c = x.shape
    m = spec.pad_multiple
    planes = pad_to_multiple(_planes(x, spec.channels), m)
    H, W = planes.shape[2:]
    tile = max(m, tile - tile % m)
    th, tw = min(tile, H), min(tile, W)
    boxes = [(y, x0) for y in tile_origins(H, th, tile - overlap) for x0 in tile_origins(W, tw, tile - overlap)]
    wgt = np.outer(feather(th, overlap if th < H else 0), feather(tw, overlap if tw < W else 0))
    out = np.zeros(planes.shape, np.float32)
    weight = np.zeros((H, W), np.float32)
    n = planes.shape[0]
    for i in range(0, len(boxes), max(1, group)):
        chunk = boxes[i : i + group]
        crops = np.concatenate([planes[:, :, y : y + th, x0 : x0 + tw] for y, x0 in chunk])
        y_hat = await infer(np.ascontiguousarray(with_noise_level(crops, sigma_255)))
        for j, (y, x0) in enumerate(chunk):
            out[:, :, y : y + th, x0 : x0 + tw] += y_hat[j * n : (j + 1) * n] * wgt
            weight[y : y + th, x0 : x0 + tw] += wgt
    out = out / weight
    result = out[:, 0] if spec.channels == 1 else out[0]  # (C, H, W)
    if spec.channels == 3 and c == 1:
        result = result.mean(axis=0, keepdims=True)
    return result[:, :h, :w].transpose(1, 2, 0)
