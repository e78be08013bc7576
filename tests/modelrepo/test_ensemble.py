"""The geometric self-ensemble (modelrepo.ensemble) and the shared paths that use it."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from modelrepo.card import InputSpec
from modelrepo.denoising import denoise
from modelrepo.ensemble import ENSEMBLES, dihedral

SPEC = InputSpec(
    color_mode="L", channels=1, height="any", width="any", mean=[0.0], std=[1.0], resize="none",
    pad_multiple=8, noise_level_channel=True,
)  # fmt: skip


@pytest.mark.parametrize("k", range(8))
def test_each_transform_is_undone_by_its_inverse(k: int) -> None:
    x = np.random.default_rng(k).random((5, 7, 3))
    y = dihedral(x, k)
    assert y.shape == ((7, 5, 3) if k % 2 else (5, 7, 3))
    np.testing.assert_array_equal(dihedral(y, k, inverse=True), x)


def test_the_eight_transforms_are_the_eight_distinct_symmetries() -> None:
    x = np.arange(12.0).reshape(3, 4, 1)
    seen = {dihedral(x, k).tobytes() + bytes(dihedral(x, k).shape) for k in range(8)}
    assert len(seen) == 8
    assert all(len(v) == n and v[0] == 0 for n, v in ENSEMBLES.items())


def _run(infer, x: np.ndarray, ensemble: int, tile: int = 64) -> np.ndarray:
    return asyncio.run(denoise(infer, x, SPEC, 25.0, tile=tile, overlap=8, group=4, ensemble=ensemble))


async def ramp(batch: np.ndarray) -> np.ndarray:
    """Not symmetric: adds a left-to-right ramp over the tile it sees."""
    return batch[:, :1] + np.linspace(0, 1, batch.shape[3], dtype=np.float32)


def test_ensemble_is_the_mean_of_the_turned_back_answers_of_each_pass() -> None:
    """Each pass sees the ramp in the turned image's frame, so the ensemble's answer is the mean of the
    ramps turned back - computed here by hand (one tile: 40 x 56 inside 64 px)."""
    x = np.random.default_rng(0).random((40, 56, 1)).astype(np.float32)
    for n, ks in ENSEMBLES.items():
        passes = []
        for k in ks:
            t = dihedral(x, k)
            passes.append(dihedral(t + np.linspace(0, 1, t.shape[1], dtype=np.float32)[None, :, None], k, True))
        got = _run(ramp, x, n)
        assert got.shape == x.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, np.mean(passes, axis=0), atol=1e-6)
    # two passes (identity, half turn): the ramp and its mirror average to a flat 0.5 - also through tiles
    for tile in (64, 32):
        np.testing.assert_allclose(_run(ramp, x, 2, tile) - x, 0.5, atol=1e-5)
    # without an explicit size the spec's is used; an explicit one wins
    two = SPEC.model_copy(update={"ensemble": 2})
    np.testing.assert_allclose(asyncio.run(denoise(ramp, x, two, 25.0, 64, 8)) - x, 0.5, atol=1e-5)
    assert np.ptp(asyncio.run(denoise(ramp, x, two, 25.0, 64, 8, ensemble=1)) - x) > 0.9


def test_an_equivariant_network_gives_the_same_answer_with_any_ensemble() -> None:
    x = np.random.default_rng(1).random((24, 40, 1)).astype(np.float32)

    async def halve(batch: np.ndarray) -> np.ndarray:  # pixelwise, so every flip and turn commutes with it
        return batch[:, :1] * 0.5

    one = _run(halve, x, 1)
    np.testing.assert_allclose(one, x * 0.5, atol=1e-6)
    for n in (2, 4, 8):
        np.testing.assert_allclose(_run(halve, x, n), one, atol=1e-6)


def test_unknown_ensemble_size_is_refused() -> None:
    with pytest.raises(ValueError, match="ensemble"):
        _run(lambda b: b, np.zeros((8, 8, 1), np.float32), 3)


def test_segmentation_averages_the_logits_of_the_turned_back_passes() -> None:
    """``segment`` wraps its network with the spec's ensemble: a 'network' whose logits favour cells on the
    left half of what it sees marks the left half with one pass, and with two passes (identity, half turn)
    both halves tie - argmax then picks class 0 everywhere."""
    from modelrepo.card import OutputSpec
    from modelrepo.cellseg import segment

    spec = InputSpec(
        color_mode="L", channels=1, height="any", width="any", mean=[0.0], std=[1.0], resize="none",
        normalization="percentile", pad_multiple=8,
    )  # fmt: skip
    out = OutputSpec(name="logits", kind="class_scores", shape=[2, "any", "any"], postprocess="argmax", object_class=1)
    raw = np.random.default_rng(0).random((32, 48)).astype(np.float32)

    async def left(batch: np.ndarray) -> np.ndarray:
        n, _, h, w = batch.shape
        cell = np.broadcast_to((np.arange(w) < w // 2).astype(np.float32), (n, h, w))
        return np.stack([np.zeros_like(cell), cell * 2 - 1], axis=1)

    one = asyncio.run(segment(left, raw, spec, out))
    assert one.classes[:, :24].all() and not one.classes[:, 24:].any()
    two = asyncio.run(segment(left, raw, spec.model_copy(update={"ensemble": 2}), out))
    assert not two.classes.any()


def test_the_card_accepts_ensembles_only_for_any_size_networks() -> None:
    from pydantic import ValidationError

    assert SPEC.model_copy(update={"ensemble": 8}).ensemble == 8
    fixed = dict(color_mode="L", channels=1, height=32, width=32, mean=[0.0], std=[1.0], resize="stretch")
    assert InputSpec(**fixed).ensemble == 1
    with pytest.raises(ValidationError, match="self-ensemble"):
        InputSpec(**fixed, ensemble=2)
    with pytest.raises(ValidationError):
        InputSpec(**{**fixed, "resize": "none", "height": "any", "width": "any"}, ensemble=3)


@pytest.mark.parametrize("shape", [(37, 50, 1), (64, 41, 3)])
def test_pixel_shuffled_denoising_interleaves_the_sub_images_back(shape) -> None:
    """``denoise`` with ``stride`` 2 and a network that returns its input: the image back exactly, odd sizes too;
    the network saw the four every-other-pixel sub-images (padded to its multiple), each plane's."""
    seen = []

    async def identity(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape)
        return batch[:, :-1]  # drop the noise-level channel

    x = np.random.default_rng(0).random(shape).astype(np.float32)
    y = asyncio.run(denoise(identity, x, SPEC, 25.0, 512, 32, group=1, stride=2))
    np.testing.assert_array_equal(y, x)
    h, w = (shape[0] + 1) // 2, (shape[1] + 1) // 2  # the largest sub-image
    assert len(seen) == 4 and all(s[0] == shape[2] and s[1] == 2 for s in seen)
    assert (-(-h // 8) * 8, -(-w // 8) * 8) in [s[2:] for s in seen]
