"""Which channel of a multi-channel microscopy image to segment (``/segment?channel=``).

Fluorescence images often arrive as colour composites (nuclei in blue, a membrane stain in green) or as
multi-page TIFFs with one channel per page (as Fiji saves them). The network reads one channel: by default
a colour image's brightness (luminance) and a multi-page file's first page, *said in the warnings* when
that may not be what the caller meant; ``channel`` picks one: ``red`` / ``green`` / ``blue`` (or ``r`` /
``g`` / ``b``) of a colour image, or a 0-based index (a colour image's band or a multi-page file's page).
TIFFs are read with tifffile, so 16-bit colour keeps its 16 bits (Pillow reads it as 8-bit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from modelrepo.errors import InputError
from modelrepo.noise import LUMA
from modelrepo.preprocess import equal_planes, intensities

NAMES = {"red": 0, "green": 1, "blue": 2, "r": 0, "g": 1, "b": 2}
SIGNAL_SHARE = 0.1  # a colour band carries signal when its spread is at least this share of the widest band's

COMPOSITE = (
    "a colour image whose channels differ: they were combined into brightness; for a fluorescence "
    "composite, channel=red|green|blue picks the one with the cells"
)
PAGES = "the file holds {n} images (pages or channels); the first was segmented: channel=0..{last} picks another"


@dataclass
class Planes:
    """A decoded file as planes: one gray image, a colour image's bands or a multi-page file's pages."""

    kind: str  # gray | colour | pages
    count: int
    plane: Callable[[int], np.ndarray]  # plane i, the file's own values as float32 (H, W)


def pil_planes(img: Image.Image) -> Planes:
    pages = int(getattr(img, "n_frames", 1))
    if pages > 1:

        def page(i: int) -> np.ndarray:
            img.seek(i)
            return intensities(img)

        return Planes("pages", pages, page)
    colour = [b for b in img.getbands() if b != "A"]
    if len(colour) > 1:
        rgb = img.convert("RGB")
        return Planes("colour", 3, lambda i: np.asarray(rgb.getchannel(i)).astype(np.float32))
    return Planes("gray", 1, lambda i: intensities(img))


def tiff_planes(tf) -> Planes:
    """An open ``tifffile.TiffFile`` (``service.images.tiff_file``): its first page's samples (colour), its
    pages, or its one image."""
    page = tf.pages[0]
    if page.samplesperpixel > 1:
        a = page.asarray()
        return array_planes(a if a.shape[-1] == page.samplesperpixel else np.moveaxis(a, 0, -1))  # planar: (S, H, W)
    if len(tf.pages) > 1:
        return Planes("pages", len(tf.pages), lambda i: tf.pages[i].asarray().astype(np.float32))
    return Planes("gray", 1, lambda i: page.asarray().astype(np.float32))


def array_planes(a: np.ndarray) -> Planes:
    """An (H, W, S) array's samples: RGB(A) without its alpha, other samples all kept; one sample: gray."""
    if a.shape[-1] == 1:
        return Planes("gray", 1, lambda i: a[..., 0].astype(np.float32))
    bands = min(a.shape[-1], 3) if a.shape[-1] in (3, 4) else a.shape[-1]
    return Planes("colour", bands, lambda i: a[..., i].astype(np.float32))


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


def pick(planes: Planes, channel: str | None) -> tuple[np.ndarray, list[str]]:
    """The chosen plane (H, W) float32, and warnings about the default choice."""
    index = parse(channel)
    if index is not None:
        if index >= planes.count:
            what = {"pages": "pages", "colour": "colour channels"}.get(planes.kind, "channel")
            raise InputError(
                "invalid_request", f"channel={channel}: the image has {planes.count} {what} (0..{planes.count - 1})"
            )
        return planes.plane(index), []
    if planes.kind == "pages":
        return planes.plane(0), [PAGES.format(n=planes.count, last=planes.count - 1)]
    if planes.kind == "colour":
        bands = [planes.plane(i) for i in range(planes.count)]
        luma = list(LUMA) if len(bands) == 3 else [1 / len(bands)] * len(bands)
        return sum(c * b for c, b in zip(luma, bands)).astype(np.float32), [COMPOSITE] if composite(bands) else []
    return planes.plane(0), []


def composite(bands: list[np.ndarray]) -> bool:
    """More than one colour band carries signal, and the bands are not one gray image."""
    x = np.stack([b[::2, ::2] for b in bands], axis=-1)
    spread = np.percentile(x, 99, axis=(0, 1)) - np.percentile(x, 1, axis=(0, 1))
    if spread.max() <= 0 or int((spread >= SIGNAL_SHARE * spread.max()).sum()) < 2:
        return False
    lo, hi = x.min(), x.max()
    return not equal_planes((x - lo) / (hi - lo))  # gray saved as colour is one image
