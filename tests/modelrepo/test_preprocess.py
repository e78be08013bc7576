"""Card-driven preprocessing: resize policies, colour modes, normalisation, JPEG draft decoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from modelrepo.card import InputSpec
from modelrepo.preprocess import preprocess


def _spec(**kw) -> InputSpec:
    base = dict(color_mode="RGB", channels=3, height=32, width=32, mean=[0.5] * 3, std=[0.25] * 3, resize="stretch")
    return InputSpec(**(base | kw))


def test_stretch_gives_nchw_float32_with_mean_std_applied() -> None:
    img = np.full((10, 20, 3), 255, np.uint8)
    x = preprocess([img, img], _spec())
    assert x.shape == (2, 3, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x, (1.0 - 0.5) / 0.25)


def test_grayscale_conversion_and_value_range() -> None:
    spec = _spec(color_mode="L", channels=1, mean=[0.0], std=[1.0], value_range=(-1.0, 1.0))
    img = Image.new("RGB", (8, 8), (0, 0, 0))
    x = preprocess([img], spec)
    assert x.shape == (1, 1, 32, 32)
    np.testing.assert_allclose(x, -1.0)


def test_center_crop_keeps_the_middle() -> None:
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, 75:125] = 255  # a white vertical band in the middle
    x = preprocess(
        [img],
        _spec(resize="shorter_side_center_crop", height=64, width=64, crop_fraction=1.0, mean=[0.0] * 3, std=[1.0] * 3),
    )
    assert x.shape == (1, 3, 64, 64)
    assert x[0, :, :, 24:40].min() > 0.9  # the band, 32 px wide after scaling, fills the centre
    assert x[0, :, :, :10].max() < 0.1


def test_resize_none_keeps_size_and_refuses_mixed_sizes() -> None:
    spec = _spec(resize="none", height="any", width="any")
    assert preprocess([np.zeros((7, 9, 3), np.uint8)], spec).shape == (1, 3, 7, 9)
    with pytest.raises(ValueError, match="different sizes"):
        preprocess([np.zeros((7, 9, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)], spec)


def test_jpeg_draft_decoding_matches_full_decoding_closely() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    big = Image.fromarray(base).resize((512, 512), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    big.save(buf, format="JPEG", quality=95)
    drafted = preprocess([Image.open(io.BytesIO(buf.getvalue()))], _spec())
    full = preprocess([Image.open(io.BytesIO(buf.getvalue())).convert("RGB").copy()], _spec())
    assert drafted.shape == full.shape == (1, 3, 32, 32)
    assert np.abs(drafted - full).mean() < 0.1  # in std units: same picture, cheaper decode


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="channels"):
        _spec(color_mode="L")
    with pytest.raises(ValueError, match="fixed height"):
        _spec(height="any")


def test_pad_to_multiple_mirrors_and_crops_back() -> None:
    from modelrepo.preprocess import pad_to_multiple

    x = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    y = pad_to_multiple(x, 4)
    assert y.shape == (2, 8, 8)
    np.testing.assert_array_equal(y[:, :5, :7], x)
    np.testing.assert_array_equal(y[:, 5, :7], x[:, 3, :])  # mirrored, not zeros
    assert pad_to_multiple(np.zeros((1, 1)), 16).shape == (16, 16)  # too small to mirror: edge
    assert pad_to_multiple(x, 1) is x
