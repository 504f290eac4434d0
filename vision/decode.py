"""Safe decoding of upload bytes into an upright, metadata-free RGB photo.

Uploads are untrusted. The order of the steps is the defence:

1. bound the byte count (``too_large``);
2. sniff the type from magic bytes only, never a file name or a declared content type
   (``unsupported_media_type``);
3. read only the header and bound the pixel count *before* any pixel buffer exists, so a
   PNG declaring 50,000 x 50,000 pixels costs a few hundred bytes (``too_many_pixels``);
   the JPEG SOF, PNG IHDR and WebP VP8/VP8L/VP8X headers are parsed here, before Pillow;
4. decode, with JPEGs downscaled in the DCT domain by libjpeg (``Image.draft``) when the
   caller only needs a smaller photo: a 12-megapixel phone photo decoded at 1/2 or 1/8
   scale skips most of the inverse-DCT and colour-conversion work;
5. apply the EXIF orientation (``PIL.ImageOps.exif_transpose``), composite
   transparency on white, convert every mode to RGB uint8 and keep only the pixels
   (EXIF, GPS, ICC and XMP never leave this module).

Anything Pillow raises on corrupt or truncated data becomes ``unreadable_image``.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps

from vision.errors import DecodeError
from vision.types import DecodedPhoto, ImageFormat

# A truncated upload must be refused, not padded with grey. This is Pillow's default;
# it is a process-wide switch, so pin it here in case some other import flipped it.
ImageFile.LOAD_TRUNCATED_IMAGES = False

_PIL_FORMAT: dict[ImageFormat, str] = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


@dataclass(frozen=True)
class DecodeLimits:
    """Upper bounds applied before (bytes) and between header and decode (pixels)."""

    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 64_000_000  # checked from the header BEFORE full decode


def sniff_format(data: bytes) -> ImageFormat:
    """The image type from its magic bytes; anything but JPEG/PNG/WebP is refused."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise DecodeError(
        "This file is not a JPEG, PNG or WebP photo. Please upload a photo in one of those "
        "formats.",
        code="unsupported_media_type",
        details={"magic": data[:12].hex()},
    )


def decode_image(
    data: bytes | bytearray | memoryview,
    *,
    limits: DecodeLimits = DecodeLimits(),  # frozen, so one shared default is safe
    target_long_side: int | None = 1600,
) -> DecodedPhoto:
    """Decode upload bytes into a :class:`DecodedPhoto` or raise :class:`DecodeError`.

    ``target_long_side`` lets a JPEG be decoded at 1/2, 1/4 or 1/8 scale as long as the
    decoded long side stays >= the target; no further resize happens here, because the
    one resize definition (``vision.preprocess``) and the quality gate's working size do
    that. ``None`` decodes at full size. PNG and WebP are always decoded at full size.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("The upload is not binary data.", code="unreadable_image")
    size = memoryview(data).nbytes
    if size == 0:
        raise DecodeError(
            "The upload is empty (0 bytes).", code="unreadable_image", details={"byte_size": 0}
        )
    if size > limits.max_bytes:
        raise DecodeError(
            f"The photo is {size / 1e6:.1f} MB; the limit is "
            f"{limits.max_bytes / 1e6:.1f} MB. Please upload a smaller photo.",
            code="too_large",
            details={"byte_size": size, "max_bytes": limits.max_bytes},
        )
    data = bytes(data)  # no copy when it already is bytes
    fmt = sniff_format(data)
    # The size is read here from the raw header, before Pillow sees the bytes: Pillow's
    # WebP reader allocates the whole canvas as soon as it opens a file.
    declared = _HEADER_SIZE[fmt](data)
    if declared[0] <= 0 or declared[1] <= 0:
        raise _header_error(fmt.upper())
    if declared[0] * declared[1] > limits.max_pixels:
        raise _too_many_pixels(declared, limits)
    if fmt == "png":
        _check_png_chunks(data)
    try:
        rgb, width, height = _decode(data, fmt, limits, target_long_side)
    except DecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(None, limits) from exc
    except Exception as exc:  # every Pillow/zlib/libjpeg failure: corrupt or truncated
        raise DecodeError(
            f"The {fmt.upper()} file is damaged or incomplete and cannot be read. "
            "Please take or upload the photo again.",
            code="unreadable_image",
            details={"format": fmt, "reason": f"{type(exc).__name__}: {exc}"[:200]},
        ) from exc
    return DecodedPhoto(
        rgb=rgb,
        original_width=width,
        original_height=height,
        format=fmt,
        sha256=hashlib.sha256(data).hexdigest(),
        byte_size=len(data),
    )


def _header_error(fmt: str) -> DecodeError:
    return DecodeError(
        f"The {fmt} file has no valid header and cannot be read. Please "
        "take or upload the photo again.",
        code="unreadable_image",
        details={"format": fmt.lower()},
    )


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which the PNG spec puts first."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise _header_error("PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _webp_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first chunk: VP8X canvas, VP8L or VP8 frame header."""
    if len(data) < 30:
        raise _header_error("WebP")
    chunk = data[12:16]
    if chunk == b"VP8X":
        return (
            1 + int.from_bytes(data[24:27], "little"),
            1 + int.from_bytes(data[27:30], "little"),
        )
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(data[26:28], "little") & 0x3FFF,
            int.from_bytes(data[28:30], "little") & 0x3FFF,
        )
    raise _header_error("WebP")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first SOFn marker segment."""
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length field
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > end:
                break
            return (
                int.from_bytes(data[pos + 7 : pos + 9], "big"),
                int.from_bytes(data[pos + 5 : pos + 7], "big"),
            )
        pos += 2 + length
    raise _header_error("JPEG")


_HEADER_SIZE = {"jpeg": _jpeg_size, "png": _png_size, "webp": _webp_size}


def _check_png_chunks(data: bytes) -> None:
    """Walk the PNG chunk list and verify every CRC (Pillow skips the IDAT ones, so a
    flipped byte in the pixel data would otherwise decode to silent garbage)."""
    pos, end, view = 8, len(data), memoryview(data)
    while pos + 12 <= end:
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        stop = pos + 12 + length
        if stop > end:
            break
        crc = int.from_bytes(data[stop - 4 : stop], "big")
        if zlib.crc32(view[pos + 4 : stop - 4]) & 0xFFFFFFFF != crc:
            raise DecodeError(
                "The PNG file is damaged (a checksum does not match). Please upload the "
                "photo again.",
                code="unreadable_image",
                details={"format": "png", "chunk": kind.decode("latin-1")},
            )
        if kind == b"IEND":
            return
        pos = stop
    raise DecodeError(
        "The PNG file is incomplete. Please upload the photo again.",
        code="unreadable_image",
        details={"format": "png"},
    )


def _too_many_pixels(size: tuple[int, int] | None, limits: DecodeLimits) -> DecodeError:
    dims = f"{size[0]} x {size[1]} pixels" if size else "too many pixels"
    return DecodeError(
        f"The photo declares {dims}; the limit is {limits.max_pixels / 1e6:.0f} megapixels. "
        "Please upload a normal camera photo.",
        code="too_many_pixels",
        details={"size": list(size) if size else None, "max_pixels": limits.max_pixels},
    )


def _decode(
    data: bytes, fmt: ImageFormat, limits: DecodeLimits, target_long_side: int | None
) -> tuple[np.ndarray, int, int]:
    """Header check, (draft) decode, orientation and mode conversion; returns rgb, w, h."""
    if limits.max_pixels > (Image.MAX_IMAGE_PIXELS or limits.max_pixels):
        # Only with a limit above Pillow's own (~89 MP): our header check already ran, so
        # Pillow's bomb warning is noise. (catch_warnings is process-wide; the common path
        # never touches it.)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[fmt]])
    else:
        im = Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[fmt]])
    with im:
        width, height = im.size  # stored (pre-rotation) size, from the header only
        if width <= 0 or height <= 0:
            raise DecodeError("The photo has no pixels.", code="unreadable_image")
        if width * height > limits.max_pixels:
            raise _too_many_pixels((width, height), limits)
        if fmt == "jpeg" and target_long_side is not None and target_long_side > 0:
            scale = target_long_side / max(width, height)
            if scale <= 0.5:  # draft can only halve, quarter or eighth
                im.draft(
                    "RGB", (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale)))
                )
        im.load()
        decoded = im.size  # after any DCT downscale
        _make_upright(im)
        if im.size != decoded:  # a quarter turn (orientations 5-8) swaps the sides
            width, height = height, width
        rgb = np.ascontiguousarray(np.asarray(_to_rgb(im), dtype=np.uint8))
    return rgb, width, height


def _make_upright(im: Image.Image) -> None:
    """Apply the EXIF orientation in place (Pillow's ``exif_transpose``; in place, so an
    upright photo costs no copy). A malformed EXIF block is not fatal: the photo is then
    used as stored, as it would be with no EXIF at all."""
    try:
        ImageOps.exif_transpose(im, in_place=True)
    except Exception:  # Pillow raises assorted types on a broken EXIF/TIFF structure
        return


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB 8-bit; transparency is composited on white."""
    if im.mode.startswith("I"):
        # 16-bit greyscale PNG ("I;16", or "I" from older Pillow): convert() would clip at
        # 255 instead of scaling, turning most of the photo white.
        arr = np.asarray(im).astype(np.int64)
        grey = (arr >> 8).clip(0, 255).astype(np.uint8)
        return Image.fromarray(np.dstack([grey, grey, grey]))
    has_alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        im.mode in ("P", "L", "RGB") and "transparency" in im.info
    )
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if im.mode == "F":
        arr = np.asarray(im)
        return Image.fromarray(np.dstack([arr.clip(0, 255).astype(np.uint8)] * 3))
    return im if im.mode == "RGB" else im.convert("RGB")
