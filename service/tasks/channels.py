"""Which channel of a multi-channel microscopy image to segment (``/segment?channel=``).

Fluorescence images often arrive as colour composites (nuclei in blue, a membrane stain in green) or as
multi-page TIFFs with one channel per page (as Fiji saves them). The network reads one channel: by default
a colour image's brightness (luminance) and a multi-page file's first page, *said in the warnings* when
that may not be what the caller meant; ``channel`` picks one: ``red`` / ``green`` / ``blue`` (or ``r`` /
``g`` / ``b``) of a colour image, or a 0-based index (a colour image's band or a multi-page file's page).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from modelrepo.errors import InputError
from modelrepo.preprocess import intensities

NAMES = {"red": 0, "green": 1, "blue": 2, "r": 0, "g": 1, "b": 2}
SIGNAL_SHARE = 0.1  # a colour band carries signal when its spread is at least this share of the widest band's
EQUAL_TOLERANCE = 2.0 / 255.0  # gray saved as colour: bands this close (share of the range) are one image

COMPOSITE = (
    "a colour image whose channels differ: they were combined into brightness; for a fluorescence "
    "composite, channel=red|green|blue picks the one with the cells"
)
PAGES = "the file holds {n} images (pages or channels); the first was segmented: channel=0..{last} picks another"


def parse(channel: str | None) -> int | None:
    """``red`` / ``g`` / ``2`` ... -> a 0-based index; None stays None; anything else: 422."""
    if channel is None:
        return None
    key = channel.strip().lower()
    if key in NAMES:
        return NAMES[key]
    if key.isdigit():
        return int(key)
    raise InputError("invalid_request", f"channel={channel!r}: give red, green, blue or a 0-based index")


def pick(img: Image.Image, channel: str | None) -> tuple[np.ndarray, list[str]]:
    """The chosen channel's own values (H, W) float32, and warnings for the default choice."""
    index = parse(channel)
    pages = int(getattr(img, "n_frames", 1))
    colour = [b for b in img.getbands() if b != "A"]
    if pages > 1:
        if index is None:
            return intensities(img), [PAGES.format(n=pages, last=pages - 1)]
        if index >= pages:
            raise InputError("invalid_request", f"channel={channel}: the file holds {pages} pages (0..{pages - 1})")
        img.seek(index)
        return intensities(img), []
    if len(colour) > 1:
        if index is None:
            return intensities(img), [COMPOSITE] if composite(img) else []
        if index >= len(colour):
            raise InputError("invalid_request", f"channel={channel}: the image has {len(colour)} colour channels")
        return np.asarray(img.getchannel(index)).astype(np.float32), []
    if index not in (None, 0):
        raise InputError("invalid_request", f"channel={channel}: the image has one channel (0)")
    return intensities(img), []


def composite(img: Image.Image) -> bool:
    """More than one colour band carries signal, and the bands are not one gray image."""
    rgb = np.asarray(img.convert("RGB"), np.float32)[::2, ::2] / 255.0
    spread = np.percentile(rgb, 99, axis=(0, 1)) - np.percentile(rgb, 1, axis=(0, 1))
    if int((spread >= SIGNAL_SHARE * spread.max()).sum()) < 2:
        return False
    deviation = np.abs(rgb - rgb.mean(axis=2, keepdims=True)).max(axis=2)
    return bool(np.percentile(deviation, 99) > EQUAL_TOLERANCE)
