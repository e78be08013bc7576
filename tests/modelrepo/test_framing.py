"""Framing uploads as the training digits were framed: ink box, size, centre, polarity, alpha, warnings."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from modelrepo.card import Framing
from modelrepo.framing import (
    COLOUR,
    MANY_MARKS,
    NO_INK,
    UNLIKE_TRAINING,
    fit_domain_check,
    frame_digit,
    frame_image,
)
from training.uploads import transparent_canvas

SPEC = Framing()


@pytest.fixture(scope="module")
def digits() -> list[np.ndarray]:
    return [np.round(im * 255 / 16).astype(np.uint8) for im in load_digits().images[:200]]


def framed(img: Image.Image, invert: str = "auto") -> tuple[np.ndarray, object]:
    g, notes = frame_image(img, SPEC, invert)
    return np.asarray(g, np.float64) / 255, notes


def big_on_canvas(d: np.ndarray, size: int = 96, canvas: int = 240, at: tuple[int, int] = (20, 110)) -> np.ndarray:
    """The digit drawn large at an off-centre place of a bigger black canvas (light ink)."""
    out = np.zeros((canvas, canvas), np.float64)
    out[at[0] : at[0] + size, at[1] : at[1] + size] = np.asarray(
        Image.fromarray(d).resize((size, size), Image.Resampling.BILINEAR), np.float64
    )
    return out


def test_size_and_position_do_not_matter(digits) -> None:
    """A digit drawn large, off-centre, on a big canvas frames like the native 8x8 one."""
    diffs = []
    for d in digits[:50]:
        small, _ = framed(Image.fromarray(d))
        big, notes = framed(Image.fromarray(big_on_canvas(d).astype(np.uint8)))
        assert notes.ink_box is not None and notes.ink_box[0] >= 100  # found where it was drawn
        diffs.append(np.abs(small - big).mean())
    assert np.mean(diffs) < 0.06


def test_dark_ink_on_light_paper_is_inverted(digits) -> None:
    for d in digits[:30]:
        light, n_light = framed(Image.fromarray(big_on_canvas(d).astype(np.uint8)))
        paper = 230 - 0.8 * big_on_canvas(d)  # gray paper, dark gray ink
        dark, notes = framed(Image.fromarray(paper.astype(np.uint8)))
        assert notes.inverted and not n_light.inverted
        assert np.abs(light - dark).mean() < 0.05


def test_invert_parameter_forces_the_polarity(digits) -> None:
    img = Image.fromarray((255 - big_on_canvas(digits[0])).astype(np.uint8))
    assert framed(img, "false")[1].inverted is False
    assert framed(img, "true")[1].inverted is True
    # forced the wrong way, the paper is taken for ink: not the digit that auto frames
    assert np.abs(framed(img, "false")[0] - framed(img, "auto")[0]).mean() > 0.2


def test_transparent_canvas_is_composited_not_read_as_black(digits) -> None:
    """A web canvas: black ink on a transparent background whose RGB is black as well."""
    for d in digits[:30]:
        light, _ = framed(Image.fromarray(big_on_canvas(d).astype(np.uint8)))
        rgba = transparent_canvas(big_on_canvas(d))
        assert np.asarray(rgba)[..., :3].max() == 0  # every pixel's RGB is black: only alpha holds the digit
        got, notes = framed(rgba)
        assert notes.alpha_composited == "white" and notes.inverted
        assert np.abs(light - got).mean() < 0.05
    white_ink, notes = framed(transparent_canvas(big_on_canvas(digits[0]), colour=(255, 255, 255)))
    assert notes.alpha_composited == "black" and not notes.inverted


def test_uniform_images_have_no_ink() -> None:
    for value in (0, 255, 128):
        g, notes = framed(Image.new("L", (64, 64), value))
        assert NO_INK in notes.warnings and g.max() == 0 and notes.ink_box is None


def test_colour_photo_is_flagged() -> None:
    from sklearn.datasets import load_sample_images

    photo = Image.fromarray(load_sample_images().images[1])  # the flower
    _, notes = framed(photo)
    assert COLOUR in notes.warnings


def test_sixteen_bit_digits_frame_like_eight_bit(digits) -> None:
    d = big_on_canvas(digits[3])
    eight, _ = framed(Image.fromarray(d.astype(np.uint8)))
    sixteen, _ = framed(Image.fromarray((d * 257).astype(np.uint16)))
    assert np.abs(eight - sixteen).mean() < 0.01


def test_a_float_image_in_0_1_frames_like_its_8_bit_levels(digits) -> None:
    for d in digits[:20]:
        eight, notes8 = frame_digit(d, SPEC)
        unit, notes1 = frame_digit(d.astype(np.float32) / 255, SPEC)  # a float TIFF's values
        assert notes1.warnings == notes8.warnings and notes1.ink_box == notes8.ink_box
        np.testing.assert_allclose(unit, eight, atol=1e-5)


def test_domain_check_flags_photos_not_digits(digits) -> None:
    import skimage.data

    grids = np.stack([frame_digit(d, SPEC)[0].ravel() for d in digits])
    check = fit_domain_check(grids[:150], grids[150:], k=12, quantile=0.98)
    spec = SPEC.model_copy(update={"domain": check})
    flagged = sum(UNLIKE_TRAINING in frame_digit(d, spec)[1].warnings for d in digits[150:])
    assert flagged <= 2  # the held-out digits set the threshold at their 98th percentile
    for name in ("coins", "camera", "checkerboard"):
        _, notes = frame_digit(np.asarray(getattr(skimage.data, name)()), spec)
        assert UNLIKE_TRAINING in notes.warnings, name


def test_many_separate_marks_are_not_one_digit(digits) -> None:
    """Coins, a page of text: many separate marks, flagged whatever the domain check says; a digit with a
    separate stroke, or with specks of dust and JPEG noise around it, is one digit."""
    import skimage.data

    for name in ("coins", "text"):
        _, notes = frame_digit(np.asarray(getattr(skimage.data, name)()), SPEC)
        assert MANY_MARKS in notes.warnings, name
    rng = np.random.default_rng(0)
    for d in digits[:40]:
        a = big_on_canvas(d, size=96, canvas=160, at=(30, 30))
        a[130:140, 30:126] = 255  # a second stroke below the digit (a 5's hat, a crossbar)
        ys, xs = rng.integers(0, 160, 30), rng.integers(0, 160, 30)
        a[ys, xs] = 255  # single-pixel specks
        assert MANY_MARKS not in frame_digit(a.astype(np.uint8), SPEC)[1].warnings
    row = np.zeros((64, 320), np.uint8)
    for k in range(5):  # five digits side by side: a number, not a digit
        row[8:56, 8 + 62 * k : 56 + 62 * k] = np.asarray(Image.fromarray(digits[k]).resize((48, 48)))
    assert MANY_MARKS in frame_digit(row, SPEC)[1].warnings


def test_hairline_strokes_are_thickened_to_the_training_pen() -> None:
    from modelrepo.framing import stroke_width, thicken

    canvas = np.zeros((32, 32), np.float32)
    canvas[4:28, 15] = 1.0  # a one-pixel line, what a thin pen on a big canvas becomes once framed
    assert stroke_width(canvas) == pytest.approx(1.0, abs=0.1)
    assert stroke_width(thicken(canvas, 4.0)) >= 3.5
    thick = np.zeros((32, 32), np.float32)
    thick[4:28, 13:18] = 1.0
    np.testing.assert_array_equal(thicken(thick, 4.0), thick)  # already wide enough: untouched
    spec = SPEC.model_copy(update={"min_stroke": 4.0})
    line = np.zeros((200, 200), np.uint8)
    line[20:180, 99:101] = 255  # a "1" drawn with a 2 px pen on a 200 px canvas
    g, _ = frame_digit(line, spec)
    assert (g > 0.5).sum() >= 8  # a full column of the 8 x 8 grid, not a faint trace


def _paper_photo(d: np.ndarray, light: float = 0.0, squares: int = 0) -> np.ndarray:
    """The digit as dark ink on gray paper (``big_on_canvas``), lit ``light`` brighter on the left than on the
    right, on squared paper with ``squares`` cells across (lines 2 px, 30 % darker)."""
    ink = big_on_canvas(d) / 255.0
    h, w = ink.shape
    paper = np.full((h, w), 220.0) * (1.0 - light * np.linspace(0, 1, w))[None, :]
    if squares:
        step = w // squares
        grid = (np.arange(h) % step < 2)[:, None] | (np.arange(w) % step < 2)[None, :]
        paper = paper * (1 - 0.3 * grid)
    return np.clip(paper * (1 - 0.85 * ink), 0, 255)


def framed_without(img: Image.Image, *switches: str) -> np.ndarray:
    """The framing with the named paper corrections (``FLATTEN``, ``RULING``, ``SHEET``) switched off."""
    import modelrepo.framing as fr

    saved = {k: getattr(fr, k) for k in switches}
    for k in switches:
        setattr(fr, k, False)
    try:
        return framed(img)[0]
    finally:
        for k, v in saved.items():
            setattr(fr, k, v)


def test_uneven_light_is_flattened_before_the_ink_is_found(digits) -> None:
    """Paper lit 45 % darker on one side than the other (a desk lamp): without flattening, the shaded paper
    reads as ink and the ink box covers it; flattened, the digit frames as on evenly lit paper."""
    diffs, unflattened = [], []
    for d in digits[:30]:
        even, _ = framed(Image.fromarray(_paper_photo(d).astype(np.uint8)))
        lit = Image.fromarray(_paper_photo(d, light=0.45).astype(np.uint8))
        flat, notes = framed(lit)
        assert notes.inverted and notes.ink_box[0] >= 100
        diffs.append(np.abs(even - flat).mean())
        unflattened.append(np.abs(even - framed_without(lit, "FLATTEN")).mean())
    assert np.mean(diffs) < 0.04 and np.mean(unflattened) > 2 * np.mean(diffs)


def test_squared_paper_lines_are_not_ink(digits) -> None:
    diffs, kept = [], []
    for d in digits[:30]:
        plain, _ = framed(Image.fromarray(_paper_photo(d).astype(np.uint8)))
        squared = Image.fromarray(_paper_photo(d, squares=8).astype(np.uint8))
        diffs.append(np.abs(plain - framed(squared)[0]).mean())
        kept.append(np.abs(plain - framed_without(squared, "RULING")).mean())
    assert np.mean(diffs) < 0.04 and np.mean(kept) > 2 * np.mean(diffs)


def test_digits_that_fill_the_image_are_not_mistaken_for_uneven_paper(digits) -> None:
    """UCI digits upscaled fill their image edge to edge, soft edges in the border ring: no flattening, no
    line removal - framed exactly as before either existed."""
    for d in digits[:100]:
        img = Image.fromarray(d).resize((128, 128), Image.Resampling.BILINEAR)
        np.testing.assert_array_equal(framed(img)[0], framed_without(img, "FLATTEN", "RULING"))


def test_a_sheet_photographed_on_a_desk_is_read_on_the_sheet() -> None:
    """The desk around a photographed sheet is not the background (before 2026-12-06 it was, and the whole
    bright sheet was boxed as the ink): the sheet is found and the digit framed on it, and the default model
    reads it."""
    import io
    from pathlib import Path

    from modelrepo.paper import sheet_box
    from modelrepo.repository import check_model_dir
    from training.data.drawn_digits import drawn_digits
    from training.data.paper_photo import on_desk
    from training.eval_repo import _logits_of
    from training.robustness import decode_files

    entry = check_model_dir(Path("models/resnet20_digits"))
    digits, labels = drawn_digits(3, 777)  # 30 digits, 3 of each class
    rng = np.random.default_rng(5)
    files = [on_desk(d, rng) for d in digits]
    photos = [Image.open(io.BytesIO(f)) for f in files]
    found = [sheet_box(np.asarray(p.convert("L"), np.float64), 0.08) is not None for p in photos]
    assert np.mean(found) >= 0.8
    box = framed(photos[0])[1].ink_box  # in the photo's own pixels, inside the sheet
    assert box[0] > 0.1 * photos[0].width and box[2] < 0.9 * photos[0].width
    logits_of = _logits_of(entry)
    read = (logits_of(decode_files(files, entry.card.input)).argmax(1) == labels).mean()
    import modelrepo.framing as fr

    fr.SHEET = False
    try:
        before = (logits_of(decode_files(files, entry.card.input)).argmax(1) == labels).mean()
    finally:
        fr.SHEET = True
    assert read >= 0.7 and before <= 0.3, (read, before)


@pytest.mark.parametrize("variant", ["thick_strokes_128", "bilinear_512", "jpeg_q50_64", "paper_photo", "drawn"])
def test_light_digits_on_dark_canvases_are_never_taken_for_a_sheet(digits, variant: str) -> None:
    """Thick or blurred light digits on black (a 0 or an 8 with its dark insides, like a sheet with writing) and
    paper photos without a desk: framed exactly as without the sheet crop."""
    import io

    from training.robustness import suite_files

    files, _ = suite_files(digits[:120], np.zeros(120, int))[variant]
    for f in files:
        img = Image.open(io.BytesIO(f))
        np.testing.assert_array_equal(framed(img)[0], framed_without(img, "SHEET"))
