"""Decoding uploaded images safely: size limits first, clear 4xx errors, card-driven preprocessing."""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from modelrepo.card import InputSpec
from modelrepo.errors import InputError, plain
from modelrepo.framing import FrameNotes, Invert
from modelrepo.preprocess import PNG_MAGIC, prepare_image_noted
from service.errors import ApiError

register_heif_opener()  # HEIC: what iPhones save photos as (Pillow reads AVIF itself)

# what Pillow and its plugins raise on broken pixel data once the header was read (AVIF and HEIC decoders:
# RuntimeError) - the client's file, a 422
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, RuntimeError, Image.DecompressionBombError)


def open_image(data: bytes, max_pixels: int, index: int = 0) -> Image.Image:
    """Open (lazily) and check the header: 422 if it is no image, 413 if it has too many pixels."""
    if not data:
        raise ApiError(422, "empty_image", f"image {index} is empty")
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as exc:  # Pillow's own guard (its limit, if ours is set higher)
        raise ApiError(413, "image_too_large", f"image {index}: {exc}") from None
    except UnidentifiedImageError:
        raise ApiError(
            422,
            "undecodable_image",
            f"image {index} is not an image format we read (PNG, JPEG, TIFF, BMP, GIF, WebP, HEIC, AVIF)",
        ) from None
    except Exception as exc:  # noqa: BLE001 - Pillow's plugins raise OSError, ValueError, struct.error ... on bad bytes
        raise ApiError(422, "undecodable_image", f"image {index} cannot be decoded: {plain(exc)}") from None
    w, h = img.size
    if w * h > max_pixels:
        raise ApiError(413, "image_too_large", f"image {index} has {w}x{h} = {w * h:,} pixels (limit {max_pixels:,})")
    return upright(img, index)


def upright(img: Image.Image, index: int = 0) -> Image.Image:
    """The image as viewers show it: a camera's EXIF orientation (a phone photo taken sideways) applied to
    the pixels, so answers line up with what the caller sees. Images without one stay lazy (JPEG draft)."""
    try:
        if img.getexif().get(ExifTags.Base.Orientation, 1) in (0, 1):
            return img
        turned = ImageOps.exif_transpose(img)
    except Exception as exc:  # noqa: BLE001 - a broken EXIF block or truncated pixels are the client's file
        raise ApiError(422, "undecodable_image", f"image {index} cannot be decoded: {plain(exc)}") from None
    turned.format = img.format
    return turned


def prepare(
    img: Image.Image, spec: InputSpec, index: int = 0, invert: Invert = "auto"
) -> tuple[np.ndarray, FrameNotes]:
    """Decode (JPEG draft mode when downscaling), frame (cards with framing), convert and resize as the
    card says -> (uint8 HxWxC, what framing did)."""
    try:
        img, notes = prepare_image_noted(img, spec, invert)
        px = np.asarray(img)
    except DECODE_ERRORS as exc:
        raise ApiError(422, "undecodable_image", f"image {index} cannot be decoded: {plain(exc)}") from None
    return (px[..., None] if px.ndim == 2 else px), notes


def deep_png(data: bytes, max_pixels: int) -> np.ndarray | None:
    """A 16-bit colour or gray + alpha PNG - what Lightroom, darktable, OpenCV and scientific tools write - as
    (H, W, C) uint16 (Pillow would reduce it to 8 bits); None for any other file. 413 / 422 as ``open_image``."""
    if data[:8] != PNG_MAGIC or len(data) < 26 or data[24] != 16 or data[25] not in (2, 4, 6):
        return None  # IHDR: bit depth, colour type (2 RGB, 4 gray + alpha, 6 RGBA)
    import imagecodecs

    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if w * h > max_pixels:
        raise ApiError(413, "image_too_large", f"image 0 has {w}x{h} = {w * h:,} pixels (limit {max_pixels:,})")
    try:
        a = np.asarray(imagecodecs.png_decode(data))
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the client's file
        raise ApiError(422, "undecodable_image", f"image 0 cannot be decoded: {plain(exc)}") from None
    return ORIENT.get(split_orientation(png_exif(data))[0], lambda v: v)(a)  # upright, as ``upright`` does


# EXIF orientation -> the numpy turn that makes the pixels upright (what ``ImageOps.exif_transpose`` does)
ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def split_orientation(exif: bytes | None) -> tuple[int, bytes | None]:
    """An EXIF block -> (its orientation, 1 when absent; the block without it, for pixels turned upright, or
    None). A block that does not parse is left behind: (1, None) - the pixels still count."""
    if not exif:
        return 1, None
    try:
        tags = Image.Exif()
        tags.load(exif)
        orientation = int(tags.pop(ExifTags.Base.Orientation, 1))
        return orientation, tags.tobytes() if len(tags) else None
    except Exception:  # noqa: BLE001 - metadata is the client's, and optional
        return 1, None


MAX_ICC_BYTES = 4 << 20  # an ICC profile is a few KB; an iCCP chunk may not inflate past this


EXIF_HEADER = b"Exif\0\0"  # what Pillow's Exif.tobytes() puts before the TIFF-structured EXIF data


def _png_chunk(data: bytes, tag: bytes) -> bytes | None:
    """The body of a PNG file's first ``tag`` chunk before its image data, or None."""
    at = 8
    while at + 8 <= len(data):
        size, found = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8]
        if found == tag:
            return data[at + 8 : at + 8 + size]
        if found in (b"IDAT", b"IEND"):
            return None
        at += 12 + size
    return None


def png_icc(data: bytes) -> bytes | None:
    """A PNG file's ICC profile (its iCCP chunk, inflated, at most ``MAX_ICC_BYTES``), or None."""
    body = _png_chunk(data, b"iCCP")
    if body is None:
        return None
    try:  # profile name, NUL, compression method (0), deflated profile
        return zlib.decompressobj().decompress(body[body.find(b"\0") + 2 :], MAX_ICC_BYTES) or None
    except zlib.error:
        return None


def png_exif(data: bytes) -> bytes | None:
    """A PNG file's EXIF block (its eXIf chunk) as Pillow's ``exif=`` takes it, or None."""
    body = _png_chunk(data, b"eXIf")
    return EXIF_HEADER + body if body else None


def png_with_meta(png: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """``png`` with iCCP (``icc``) and eXIf (``exif``, with or without its Exif header) chunks right after
    its IHDR - before PLTE and IDAT, where the PNG spec wants them."""
    chunks = []
    if icc:
        chunks.append((b"iCCP", b"ICC profile\0\0" + zlib.compress(icc)))
    if exif:
        chunks.append((b"eXIf", exif.removeprefix(EXIF_HEADER)))
    raw = b"".join(len(b).to_bytes(4, "big") + t + b + zlib.crc32(t + b).to_bytes(4, "big") for t, b in chunks)
    end = 8 + 12 + int.from_bytes(png[8:12], "big")  # signature, IHDR
    return png[:end] + raw + png[end:]


@contextmanager
def tiff_file(data: bytes, max_pixels: int) -> Iterator:
    """An open ``tifffile.TiffFile`` (its codecs read LZW / deflate / zstd / JPEG TIFFs and keep 16-bit colour,
    which Pillow does not) whose first page is within ``max_pixels`` (413); any failure to decode is a 422."""
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tf:
            page = tf.pages[0]
            h, w = page.imagelength, page.imagewidth
            if h * w > max_pixels:
                raise InputError("image_too_large", f"image has {w}x{h} = {w * h:,} pixels (limit {max_pixels:,})")
            yield tf
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any TIFF decoding failure is the client's file
        raise InputError("undecodable_image", f"TIFF cannot be decoded: {plain(exc)}") from None
