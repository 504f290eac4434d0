"""Safe decoding of upload bytes into an upright, metadata-free RGB photo.

Uploads are untrusted. The order of the steps is the defence:

1. bound the byte count (``too_large``);
2. sniff the type from magic bytes only, never a file name or a declared content type
   (``unsupported_media_type``);
3. read only the header and bound the pixel count *before* any pixel buffer exists, so a
   PNG declaring 50,000 x 50,000 pixels costs a few hundred bytes (``too_many_pixels``);
   the JPEG SOF, PNG IHDR and WebP VP8/VP8L/VP8X headers are parsed here, before Pillow.
   A side over ``max_side`` (65,500) is refused too (``image_too_long``): every photo is
   stored as a JPEG, whose encoder stops there, so a PNG 65,535 pixels long would
   otherwise fail after grading;
4. bound the decode's MEMORY from the same header (``decode_cost``, below): what this
   format and size will make Pillow and libjpeg/libpng/libwebp allocate must fit
   ``max_decode_bytes``, else ``too_many_pixels`` naming that format's megapixel limit;
5. decode, with JPEGs downscaled in the DCT domain by libjpeg (``Image.draft``) when the
   caller only needs a smaller photo: a 12-megapixel phone photo decoded at 1/2 or 1/8
   scale skips most of the inverse-DCT and colour-conversion work. Formats without a
   DCT (PNG, WebP), and JPEGs still twice the target after the draft, are reduced by an
   integer box filter (``Image.reduce``) strip by strip, so the only full-size buffer is
   the one Pillow decoded into;
6. apply the EXIF orientation (the ``PIL.ImageOps.exif_transpose`` mapping, on the
   reduced photo), composite transparency on white, convert every mode to RGB uint8 and
   keep only the pixels (EXIF, GPS, ICC and XMP never leave this module).

Memory bound (``ImageHeader.decode_cost``). PNG and WebP cannot be decoded at a
reduced size, so the full decoded image must exist once: Pillow keeps 4 bytes per pixel
for RGB, RGBA and LA, 2 for 16-bit grey, 1 for palette/grey; a still WebP is decoded by
OpenCV's libwebp call straight into one array (lossless adds libwebp's ARGB work buffer;
an animation goes through Pillow's reader, which holds 16 bytes per pixel). A baseline
JPEG decoded with a DCT draft streams: only the drafted image exists. A progressive (or
multi-scan) JPEG keeps every DCT coefficient of the full image (128 bytes per 8x8 block
per component) whatever the output scale. The strip conversion adds a few
``_STRIP_BYTES`` and the reduced output. With the default 160 MiB budget (grading's
512 px target) the largest photo that decodes is 64 MP for a baseline JPEG, a palette,
grey or 16-bit grey PNG; 36 MP for an RGB(A) PNG; 47 / 23 MP for a progressive 4:2:0 /
4:4:4 JPEG; 29 MP for a lossy WebP, 18 MP lossless, 9 MP animated. One decode then
allocates at most the budget, whatever the bytes say (``returnlens bench --only bombs``
measures it).

Anything Pillow raises on corrupt or truncated data becomes ``unreadable_image``.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageFile

from vision.errors import DecodeError
from vision.types import DecodedPhoto, ImageFormat

# A truncated upload must be refused, not padded with grey. This is Pillow's default;
# it is a process-wide switch, so pin it here in case some other import flipped it.
ImageFile.LOAD_TRUNCATED_IMAGES = False

_PIL_FORMAT: dict[ImageFormat, str] = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


MiB = 1024 * 1024


@dataclass(frozen=True)
class DecodeLimits:
    """Upper bounds applied before (bytes) and between header and decode (pixels, shape,
    the decode's memory)."""

    max_bytes: int = 25 * MiB
    max_pixels: int = 64_000_000  # checked from the header BEFORE full decode
    max_side: int = 65_500  # every photo is stored as a JPEG, whose encoder stops there
    max_decode_bytes: int = 160 * MiB  # decode_cost(header) must fit (module docstring)


@dataclass(frozen=True)
class ImageHeader:
    """What the header says, read without decoding: format, stored size, and what a
    decode will allocate (``decode_cost``)."""

    format: ImageFormat
    width: int
    height: int
    bytes_per_pixel: float  # full-size buffers (Pillow image, codec canvas, coefficients)
    streams: bool  # True: a baseline JPEG, decoded straight to the draft size

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def decode_cost(self, target_long_side: int | None) -> int:
        """Bytes the decode of this image allocates beyond the input bytes, at most."""
        w, h = self.width, self.height
        full = math.ceil(self.pixels * self.bytes_per_pixel)  # codec + Pillow full buffers
        if self.format == "jpeg":  # + the (drafted) image Pillow decodes into, 4 B/px
            w, h = _drafted(w, h, target_long_side)
            full += 4 * w * h
        if target_long_side:  # the box reduction keeps the long side >= the target
            factor = max(1, max(w, h) // target_long_side)
            w, h = math.ceil(w / factor), math.ceil(h / factor)
        return full + 3 * _STRIP_BYTES + 8 * w * h  # + strip conversion + RGB result


def _drafted(width: int, height: int, target_long_side: int | None) -> tuple[int, int]:
    """The size libjpeg's DCT draft decodes to (``_decode``): 1/2, 1/4 or 1/8 scale."""
    if not target_long_side:
        return width, height
    scale = target_long_side / max(width, height)
    denom = next((d for d in (8, 4, 2) if scale <= 1 / d), 1)
    return math.ceil(width / denom), math.ceil(height / denom)


_STRIP_BYTES = 4 * MiB  # source rows converted and reduced at a time


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
    sha256: str | None = None,
) -> DecodedPhoto:
    """Decode upload bytes into a :class:`DecodedPhoto` or raise :class:`DecodeError`.

    ``sha256``: the hex digest of ``data`` when the caller has it already (the service
    hashes every upload before it decodes any, to refuse a repeated file undecoded); a
    12 MP phone JPEG takes about 1.7 ms to hash, on the upload's critical path.

    ``target_long_side`` lets a JPEG be decoded at 1/2, 1/4 or 1/8 scale as long as the
    decoded long side stays >= the target; any format whose long side is still twice the
    target or more is then box-reduced by an integer factor (long side in [target,
    2 x target)). The one resize definition (``vision.preprocess``) and the quality
    gate's working size do the rest. ``None`` decodes at full size.
    """
    header = check_header(data, limits=limits, target_long_side=target_long_side)
    data = bytes(data)  # no copy when it already is bytes
    fmt = header.format
    if fmt == "png":
        _check_png_chunks(data)
    try:
        rgb, width, height, orientation = _decode(data, fmt, limits, target_long_side)
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
        sha256=sha256 if sha256 is not None else hashlib.sha256(data).hexdigest(),
        byte_size=len(data),
        orientation=orientation,
    )


def read_header(data: bytes) -> ImageHeader:
    """Format, declared size and decode cost from the magic bytes and the header only.

    The size is read here from the raw header, before Pillow sees the bytes: Pillow's WebP
    reader allocates the whole canvas as soon as it opens a file.
    """
    fmt = sniff_format(data)
    if fmt == "jpeg":
        width, height, per_pixel, streams = _jpeg_header(data)
    elif fmt == "png":
        width, height = _png_size(data)
        per_pixel, streams = _png_bytes_per_pixel(data), False
    else:
        width, height = _webp_size(data)
        per_pixel, streams = _WEBP_BYTES[_webp_kind(data)], False
    if width <= 0 or height <= 0:
        raise _header_error(fmt.upper())
    return ImageHeader(fmt, width, height, per_pixel, streams)


def check_header(
    data: bytes | bytearray | memoryview,
    *,
    limits: DecodeLimits = DecodeLimits(),
    target_long_side: int | None = None,
) -> ImageHeader:
    """Every refusal that needs no decoding, in ``decode_image``'s order: not bytes,
    empty, too large, not JPEG/PNG/WebP, a bad header, too many pixels, a side too long,
    a decode over the memory budget (all before any pixel buffer exists)."""
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
    header = read_header(bytes(data))  # no copy when it already is bytes
    sides = (header.width, header.height)
    if header.pixels > limits.max_pixels:
        raise _too_many_pixels(sides, limits)
    if max(sides) > limits.max_side:
        raise DecodeError(
            f"The photo is {sides[0]} x {sides[1]} pixels; a side may be at most "
            f"{limits.max_side:,} pixels. Please upload a normal photo of the item.",
            code="image_too_long",
            details={"size": list(sides), "max_side": limits.max_side},
        )
    cost = header.decode_cost(target_long_side)
    if cost > limits.max_decode_bytes:
        raise _too_costly(header, limits, target_long_side)
    return header


def _too_costly(
    header: ImageHeader, limits: DecodeLimits, target_long_side: int | None
) -> DecodeError:
    """Refusal of a photo whose decode would not fit the memory budget, naming the largest
    photo of this kind that does."""
    per_pixel = header.decode_cost(target_long_side) / header.pixels
    max_mp = max(0.0, limits.max_decode_bytes / per_pixel / 1e6)
    kind = header.format.upper()
    if header.format == "jpeg":
        kind = "JPEG" if header.streams else "progressive JPEG"
    return DecodeError(
        f"The photo is {header.width} x {header.height} pixels "
        f"({header.pixels / 1e6:.1f} megapixels); a {kind} photo may have at most "
        f"{max_mp:.0f} megapixels. Please upload a smaller photo or a normal camera JPEG.",
        code="too_many_pixels",
        details={
            "size": [header.width, header.height],
            "format": header.format,
            "max_pixels": int(max_mp * 1e6),
        },
    )


# Pillow's storage per pixel for each PNG colour type (IHDR byte 9): grey 1 (16-bit: 2),
# RGB 4 (Pillow pads RGB to 32 bits), palette 1, grey+alpha 4 (LA), RGBA 4.
_PNG_BYTES = {0: 1.0, 2: 4.0, 3: 1.0, 4: 4.0, 6: 4.0}


def _png_bytes_per_pixel(data: bytes) -> float:
    colour, depth = data[25], data[24]
    if colour == 0 and depth == 16:
        return 2.0
    return _PNG_BYTES.get(colour, 4.0)


def _header_error(fmt: str) -> DecodeError:
    return DecodeError(
        f"The {fmt} file has no valid header and cannot be read. Please "
        "take or upload the photo again.",
        code="unreadable_image",
        details={"format": fmt.lower()},
    )


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which the PNG spec puts first."""
    if len(data) < 26 or data[12:16] != b"IHDR":  # through bit depth and colour type
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


# Bytes per pixel of a WebP decode: OpenCV's libwebp call writes straight into the output
# (3-4 B/px; lossless adds libwebp's ARGB work buffer, 4 B/px). An animation goes through
# Pillow's reader: libwebp's two RGBA canvases, the frame copy and Pillow's image.
_WEBP_BYTES = {"lossy": 5.0, "lossless": 8.0, "animated": 16.0}


def _webp_kind(data: bytes) -> str:
    """lossy | lossless | animated, from the RIFF chunk list (no pixel data read)."""
    if data[12:16] == b"VP8X" and data[20] & 0x02:
        return "animated"
    pos, end = 12, min(len(data), 1 << 20)
    while pos + 8 <= end:
        kind = data[pos : pos + 4]
        if kind == b"VP8L":
            return "lossless"
        if kind in (b"VP8 ", b"ANIM", b"ANMF"):
            return "animated" if kind != b"VP8 " else "lossy"
        pos += 8 + int.from_bytes(data[pos + 4 : pos + 8], "little")
        pos += pos & 1  # chunks are padded to an even size
    return "lossy"


def _webp_orientation(data: bytes) -> int:
    """The EXIF orientation of a WebP (its EXIF chunk), or 1."""
    pos, end = 12, len(data)
    while pos + 8 <= end:
        kind, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if kind == b"EXIF":
            exif = Image.Exif()
            try:
                payload = data[pos + 8 : pos + 8 + size]
                exif.load(payload[6:] if payload.startswith(b"Exif\x00\x00") else payload)
                value = exif.get(0x0112, 1)
            except Exception:  # a malformed EXIF block: use the photo as stored
                return 1
            return value if isinstance(value, int) and value in _TRANSPOSE else 1
        pos += 8 + size + (size & 1)
    return 1


_PROGRESSIVE_SOF = (0xC2, 0xC6, 0xCA, 0xCE)


def _jpeg_header(data: bytes) -> tuple[int, int, float, bool]:
    """(width, height, bytes per pixel, streams) from the first SOFn and SOS segments.

    A baseline JPEG whose first scan holds every component decodes row by row (``streams``);
    a progressive or multi-scan one makes libjpeg keep all DCT coefficients of the full
    image: 64 coefficients x 2 bytes per 8x8 block of each component, at that component's
    sampling.
    """
    pos, end = 2, len(data)
    frame: tuple[int, int, float, int, bool] | None = None  # w, h, B/px, components, prog.
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
        if marker == 0xD9:  # end of image
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # start of scan: the first one says whether it interleaves all
            if frame is None:
                break
            width, height, per_pixel, components, progressive = frame
            scan_components = data[pos + 4] if pos + 4 < end else components
            streams = not progressive and scan_components >= components
            return width, height, (0.0 if streams else per_pixel), streams
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and frame is None:
            if pos + 10 > end:
                break
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            components = data[pos + 9]
            frame = (
                width,
                height,
                _coefficient_bytes_per_pixel(data[pos + 10 : pos + 10 + 3 * components]),
                components,
                marker in _PROGRESSIVE_SOF,
            )
        pos += 2 + length
    if frame is not None:  # no scan found: decoding fails later; cost as buffered
        return frame[0], frame[1], frame[2], False
    raise _header_error("JPEG")


def _coefficient_bytes_per_pixel(specs: bytes) -> float:
    """DCT coefficient storage per image pixel: 2 bytes x 64 per 8x8 block, for each
    component at its sampling factors relative to the largest (ids, HV, table triples)."""
    factors = [(b >> 4, b & 0x0F) for b in specs[1::3]]
    if not factors:
        return 0.0
    h_max = max(max(h for h, _ in factors), 1)
    v_max = max(max(v for _, v in factors), 1)
    return sum(2.0 * h * v / (h_max * v_max) for h, v in factors)


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
) -> tuple[np.ndarray, int, int, int]:
    """Header check, (draft) decode, orientation and mode conversion; returns rgb, w, h
    and the orientation applied."""
    if fmt == "webp" and _webp_kind(data) != "animated":
        return _decode_webp(data, target_long_side)
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
        orientation = _orientation(im)
        factor = 1
        if target_long_side is not None and target_long_side > 0:
            factor = max(1, max(im.size) // target_long_side)  # keeps >= the target
        upright = _apply_orientation(_reduced_rgb(im, factor), orientation)
        if orientation in _QUARTER_TURNS:  # the upright photo's sides are swapped
            width, height = height, width
        rgb = np.ascontiguousarray(np.asarray(upright, dtype=np.uint8))
    return rgb, width, height, orientation


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_QUARTER_TURNS = (5, 6, 7, 8)


def _orientation(im: Image.Image) -> int:
    """The EXIF (or XMP) orientation, read as ``PIL.ImageOps.exif_transpose`` reads it. A
    malformed EXIF block is not fatal: the photo is then used as stored, as it would be
    with no EXIF at all."""
    try:
        value = im.getexif().get(0x0112, 1)  # ExifTags.Base.Orientation
    except Exception:  # Pillow raises assorted types on a broken EXIF/TIFF structure
        return 1
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


def _apply_orientation(im: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return im if method is None else im.transpose(method)


def _reduced_rgb(im: Image.Image, factor: int) -> Image.Image:
    """``im`` as RGB, box-reduced by ``factor`` (1: not reduced).

    The conversion to RGB (alpha on white, 16-bit grey scaled, palette expanded) and the
    reduction run on horizontal strips of ``factor``-aligned rows, so a big PNG costs its
    decoded image plus one strip's conversion and the small result, never another
    full-size copy per conversion step.
    """
    if factor <= 1:
        return _to_rgb(im)
    width, height = im.size
    out = Image.new("RGB", (math.ceil(width / factor), math.ceil(height / factor)))
    rows = max(factor, _STRIP_BYTES // (4 * width) // factor * factor)
    for top in range(0, height, rows):
        strip = im.crop((0, top, width, min(height, top + rows)))
        out.paste(_to_rgb(strip).reduce(factor), (0, top // factor))
    return out


def _decode_webp(data: bytes, target_long_side: int | None) -> tuple[np.ndarray, int, int, int]:
    """A still WebP through OpenCV's libwebp call, which decodes straight into one output
    array (Pillow's reader keeps two RGBA canvases and a copy besides its image: 16 bytes
    per pixel instead of 3-4). Alpha is composited on white and the box reduction done
    strip by strip, as for the other formats."""
    arr = None  # OpenCV logs (to stderr) a file shorter than its 32-byte header read
    if len(data) >= 32:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise DecodeError(
            "The WEBP file is damaged or incomplete and cannot be read. "
            "Please take or upload the photo again.",
            code="unreadable_image",
            details={"format": "webp"},
        )
    height, width = arr.shape[:2]
    factor = max(1, max(width, height) // target_long_side) if target_long_side else 1
    rows = max(factor, _STRIP_BYTES // (4 * width) // factor * factor)
    parts = []
    for top in range(0, height, rows):
        strip = _bgr_strip_to_rgb(arr[top : top + rows])
        parts.append(np.asarray(Image.fromarray(strip).reduce(factor)) if factor > 1 else strip)
    del arr
    orientation = _webp_orientation(data)
    upright = _apply_orientation(Image.fromarray(np.concatenate(parts)), orientation)
    if orientation in _QUARTER_TURNS:
        width, height = height, width
    rgb = np.ascontiguousarray(np.asarray(upright, dtype=np.uint8))
    return rgb, width, height, orientation


def _bgr_strip_to_rgb(strip: np.ndarray) -> np.ndarray:
    """BGR(A) rows -> RGB, alpha composited on white (rounded as Pillow's alpha_composite)."""
    if strip.shape[2] == 3:
        return cv2.cvtColor(strip, cv2.COLOR_BGR2RGB)
    # 255 - (255 - c) * a / 255: the product fits uint16, so no wider temporaries.
    missing = (255 - strip[..., 2::-1]).astype(np.uint16)
    missing *= strip[..., 3:4]
    missing += 127
    missing //= 255
    return (255 - missing).astype(np.uint8)


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB 8-bit; transparency is composited on white."""
    if im.mode.startswith("I"):
        # 16-bit greyscale PNG ("I;16", or "I" from older Pillow): convert() would clip at
        # 255 instead of scaling, turning most of the photo white.
        arr = np.asarray(im)
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
