"""Image classification: decode -> predict -> encode, plus occlusion-sensitivity explanations."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from modelrepo.card import ModelCard
from modelrepo.framing import FrameNotes, Invert
from modelrepo.preprocess import softmax, to_batch
from service.batcher import Timing
from service.images import open_image, prepare
from service.registry import ModelState


def decode(
    blobs: list[bytes], card: ModelCard, max_pixels: int, invert: Invert = "auto"
) -> tuple[np.ndarray, list[np.ndarray], list[FrameNotes]]:
    """Bytes -> (network input (N, C, H, W), the prepared uint8 images (H, W, C) for overlays, and per
    image what framing did)."""
    prepared = [prepare(open_image(b, max_pixels, i), card.input, i, invert) for i, b in enumerate(blobs)]
    pixels = [p for p, _ in prepared]
    return to_batch(pixels, card.input), pixels, [n for _, n in prepared]


def result(predictions: list[dict], notes: FrameNotes, framed: bool) -> dict:
    """One image's answer: predictions, and for framing cards what was done and any warnings."""
    out: dict = {"predictions": predictions}
    if framed:
        out["preprocessing"] = notes.as_dict()
    out["warnings"] = list(notes.warnings)
    out["reliable"] = not notes.warnings
    return out


async def predict(state: ModelState, x: np.ndarray, timeout_s: float) -> tuple[np.ndarray, Timing]:
    assert state.batcher is not None
    return await state.batcher.infer(x, timeout_s)


def encode(logits: np.ndarray, card: ModelCard, top_k: int) -> list[list[dict]]:
    """Logits (N, K) -> per image the top-k ``{label, index, score}`` (softmax probabilities)."""
    assert card.labels is not None
    probs = softmax(logits.astype(np.float64)) if card.output.postprocess == "softmax" else logits
    k = min(top_k, probs.shape[1])
    out = []
    for p in probs:
        top = np.argsort(-p, kind="stable")[:k]
        out.append([{"label": card.labels[i], "index": int(i), "score": round(float(p[i]), 6)} for i in top])
    return out


# -- occlusion sensitivity ------------------------------------------------------------------------


def occlusion_variants(x: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, list[int], list[int]]:
    """Copies of ``x`` (C, H, W), each with one window set to 0 (the training mean after normalisation)."""
    _, h, w = x.shape
    tops = sorted(set(list(range(0, max(1, h - window + 1), stride)) + [max(0, h - window)]))
    lefts = sorted(set(list(range(0, max(1, w - window + 1), stride)) + [max(0, w - window)]))
    variants = np.repeat(x[None], len(tops) * len(lefts), axis=0)  # (K, C, H, W)
    for k, (t, left) in enumerate((t, le) for t in tops for le in lefts):
        variants[k, :, t : t + window, left : left + window] = 0.0
    return variants, tops, lefts


def occlusion_map(
    drops: np.ndarray, tops: list[int], lefts: list[int], window: int, shape: tuple[int, int]
) -> np.ndarray:
    """Per-pixel mean of the score drops of every window that covers the pixel -> (H, W)."""
    acc = np.zeros(shape, np.float64)
    cnt = np.zeros(shape, np.float64)
    for k, (t, left) in enumerate((t, le) for t in tops for le in lefts):
        acc[t : t + window, left : left + window] += drops[k]
        cnt[t : t + window, left : left + window] += 1
    return acc / np.maximum(cnt, 1)


def overlay_png(pixels: np.ndarray, heat: np.ndarray, min_side: int = 160) -> str:
    """The image with the heat map (red = the class score drops most when hidden) blended on top; base64 PNG."""
    base = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")
    scale = max(1, -(-min_side // min(base.size)))
    size = (base.width * scale, base.height * scale)
    base = base.resize(size, Image.Resampling.NEAREST)
    h = np.clip(heat / max(float(heat.max()), 1e-6), 0, 1)  # only drops count as evidence
    hm = Image.fromarray((h * 255).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
    a = np.asarray(hm, np.float32)[..., None] / 255
    colour = np.concatenate([np.ones_like(a), a * 0.8, np.zeros_like(a)], axis=-1) * 255  # red -> yellow
    out = np.asarray(base, np.float32) * (1 - 0.6 * a) + colour * 0.6 * a
    buf = io.BytesIO()
    Image.fromarray(out.clip(0, 255).astype(np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


async def explain_occlusion(
    state: ModelState, x: np.ndarray, pixels: np.ndarray, target: int, timeout_s: float
) -> dict:
    """Occlusion sensitivity for one image: hide each window, run all copies as batches, map the drop."""
    assert state.card is not None and state.card.labels is not None
    _, h, w = x.shape
    window = max(2, round(min(h, w) / 4))
    stride = max(1, window // 2)
    variants, tops, lefts = occlusion_variants(x, window, stride)
    logits, _ = await predict(state, np.concatenate([x[None], variants]), timeout_s)
    probs = softmax(logits.astype(np.float64))[:, target]
    drops = probs[0] - probs[1:]  # how much hiding each window lowers the target's probability
    heat = occlusion_map(drops, tops, lefts, window, (h, w))
    return {
        "method": "occlusion",
        "target": {"label": state.card.labels[target], "index": target, "score": round(float(probs[0]), 6)},
        "window": window,
        "stride": stride,
        "grid": np.round(drops.reshape(len(tops), len(lefts)), 4).tolist(),
        "overlay_png": overlay_png(pixels, heat),
    }
