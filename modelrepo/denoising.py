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
from modelrepo.noise import median_level
from modelrepo.preprocess import pad_to_multiple, with_noise_level
from modelrepo.tiles import tile_origins

Infer = Callable[[np.ndarray], Awaitable[np.ndarray]]
SHUFFLE_STRIDE = 2  # the pixel-shuffle stride camera noise is denoised at (``/denoise?pd=true``)

TILE, OVERLAP = 512, 32  # the service's default tile size and overlap (px), and what evaluation uses
# the blind level's sample (``residual_level``): a 2 x 2 grid of 64 px tiles, 6 % of a 512 x 512 image (its one pass
# adds ~5 % to a x2 self-ensemble's time; 96 px tiles: 11 %)
SAMPLE_TILE, SAMPLE_GRID = 64, 2


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


def sample_tiles(x: np.ndarray, tile: int = SAMPLE_TILE, grid: int = SAMPLE_GRID) -> list[np.ndarray]:
    """Up to grid x grid tiles of x (H, W, C), centred on the cells of a grid x grid division (fewer, and
    smaller, where the image is small)."""
    h, w = x.shape[:2]
    th, tw = min(tile, h), min(tile, w)
    ys = sorted({min(max(0, round((i + 0.5) * h / grid - th / 2)), h - th) for i in range(grid)})
    xs = sorted({min(max(0, round((j + 0.5) * w / grid - tw / 2)), w - tw) for j in range(grid)})
    return [np.ascontiguousarray(x[y : y + th, x0 : x0 + tw]) for y in ys for x0 in xs]


async def residual_level(infer: Infer, x: np.ndarray, spec: InputSpec, sigma_255: float) -> float:
    """The noise level (0-255 scale) the network removes from ``sample_tiles`` of x when told
    ``sigma_255``: the robust (median absolute deviation) standard deviation of noisy - denoised, pooled
    over the tiles and planes; one pass, every tile in one batch."""
    tiles = sample_tiles(x)
    th, tw = tiles[0].shape[:2]
    planes = np.concatenate([_planes(t, spec.channels) for t in tiles])  # (n, channels, th, tw)
    batch = with_noise_level(pad_to_multiple(planes, spec.pad_multiple), sigma_255)
    r = planes - (await infer(np.ascontiguousarray(batch)))[:, :, :th, :tw]
    return median_level(r - np.median(r)) * 255


async def blind_level(infer: Infer, x: np.ndarray, spec: InputSpec, estimate_255: float) -> float:
    """The level a blind request is denoised at. The wavelet estimate reads texture as noise - never less than
    the noise, often more (grass at sigma 5 reads 13) - and the network told too high a level smooths texture
    away. What it removes at that level is mostly the noise: about ``spec.noise_refine`` of it on smooth images
    (a little noise stays), less where texture hides noise, more where it takes texture for noise. With that
    share on the card: the estimate or ``residual_level`` / share, whichever is lower; else the estimate - and
    for images narrower than a sample tile, whose residual is mostly tile edge (a 5 x 200 strip with sigma 20
    noise read 17.9)."""
    if spec.noise_refine is None or estimate_255 <= 0 or min(x.shape[:2]) < SAMPLE_TILE:
        return estimate_255
    return min(estimate_255, await residual_level(infer, x, spec, estimate_255) / spec.noise_refine)
