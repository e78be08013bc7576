"""Typeset digits from the TrueType fonts that matplotlib bundles: extra *training* images.

The UCI writers' styles leave gaps (a closed 4, a 1 with flag and base, a crossed 7 are rare or
absent). Glyphs of the bundled serif, sans, mono and Computer Modern fonts, regular, bold and
italic, fill them; ``training/uploads.py`` then warps, thickens, thins, blurs and resamples them
like every other training image. Only training uses them: the robustness suite's drawn digits come
from ``drawn_digits.py``, a different generator.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

SOURCE = "matplotlib bundled TrueType fonts (mpl-data/fonts/ttf)"
# text fonts with all ten digits (the STIX size/symbol fonts and cmex/cmsy/cmmi are symbol fonts)
FONTS = [
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmss10.ttf",
    "cmti10.ttf",
    "cmtt10.ttf",
]
SIZE = 64


def _glyph(font: ImageFont.FreeTypeFont, digit: int) -> np.ndarray:
    """The digit drawn white on black, cropped to its ink and padded to a square of SIZE px."""
    canvas = Image.new("L", (3 * SIZE, 3 * SIZE), 0)
    ImageDraw.Draw(canvas).text((SIZE, SIZE // 2), str(digit), fill=255, font=font)
    a = np.asarray(canvas)
    ys, xs = np.nonzero(a > 32)
    a = a[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    side = max(a.shape) + 8
    out = np.zeros((side, side), np.uint8)
    y0, x0 = (side - a.shape[0]) // 2, (side - a.shape[1]) // 2
    out[y0 : y0 + a.shape[0], x0 : x0 + a.shape[1]] = a
    return np.asarray(Image.fromarray(out).resize((SIZE, SIZE), Image.Resampling.LANCZOS))


def font_digits() -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """(images SIZE x SIZE uint8 light ink on black, labels, the font files used); deterministic."""
    root = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    images, labels, used = [], [], []
    for name in FONTS:
        path = root / name
        if not path.exists():
            continue
        font = ImageFont.truetype(str(path), size=SIZE)
        used.append(name)
        for d in range(10):
            images.append(_glyph(font, d))
            labels.append(d)
    return images, np.asarray(labels, np.int64), used
