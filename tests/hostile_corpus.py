"""The hostile-input corpus: named requests that try to break the service (issue 15).

Every case is generated in memory, deterministically (fixed seeds, no files, no network),
when the test runs: ``corpus()`` lists the cases cheaply, each case's ``build()`` makes
its request bytes (the few large payloads are cached). ``tests/test_hostile.py`` sends
them to a live server on SQLite and on PostgreSQL.

A case names the route it targets and what a correct service answers:

- ``REFUSE``: a 4xx JSON error ``{code, message, details}`` (the input is invalid);
- ``ACCEPT``: a 2xx (the input is odd but valid: a CMYK JPEG, a 300-character note);
- ``EITHER``: a 2xx or such a 4xx (valid by the letter, and refusing it is fine too:
  a PNG with a ZIP appended, a photo 65535 x 1 pixels, an order delivered in 9999).

Never a 500 and never a hang, whatever the expectation. Where it matters a case also
names the error codes it allows (``codes``) and bytes that must never reach the photo
store (``absent_from_store``: the ZIP or HTML half of a polyglot).

Every photo a case sends has its own pixels: a seed is stamped into them (``stamped``,
read back by ``read_stamp``). The photo store is content-addressed, so two cases sending
the same picture would share one file and an orphan left by a failed request would hide
behind the other's row; with a stamp per case the reconciliation sees every orphan and
names the case that left it (``cases_by_seed``).

The groups:

- photos (``photo_payloads``), each sent to the four routes that take one: the
  shopper upload, the dock inspection, the raw reference photo and a catalog row's
  base64 reference. Truncations at several cut points, zero bytes, random bytes behind
  a real magic, polyglots, decompression bombs (real and header-only), extreme
  dimensions, bit depths and modes, broken and oversized EXIF, animations, other
  formats named ``.jpg``, SVG;
- JSON fields of every JSON route (``field_cases``): strings at and over their limit,
  300 and 10,000 characters, NUL, lone surrogates, control characters, emoji, invalid
  UTF-8, wrong types; numbers negative, huge, NaN, infinite; dates at the ends of the
  calendar and beyond;
- whole bodies on every JSON route (``body_cases``): 100,000 nested ``[`` or
  ``{"a":``, empty, ``null``, the wrong top-level type, trailing junk, BOM, UTF-16,
  over the size cap, wrong content types;
- CSV uploads of the admin loaders; the dock form's text fields and idempotency key;
- malformed multipart (``multipart_cases``): no boundary, the wrong boundary, an
  unterminated part, 1000 tiny parts, a photo without a file name, text where a file
  belongs, a file in the wrong field, odd file names, base64 transfer encoding, chunked;
- query and path parameters of the read routes (``param_cases``);
- a reference photo replaced by another (``reference.replaced``): the first file must
  not outlive its row either.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import re
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel

from serving.api.schemas import CatalogItemIn, CreateReturnIn, OrderIn
from serving.services.inputs import ApiKeyRequest, InspectionRequest, ReviewRequest
from serving.web.api_lookup import OrderLookupIn
from tests.photo_factory import encode, item_scene, png_bomb, png_chunk, webp_bomb


class Expect(Enum):
    REFUSE = "a 4xx"
    ACCEPT = "a 2xx"
    EITHER = "a 2xx or a 4xx"


Auth = Literal["admin", "dock", "reviewer", "shopper"]

# What the live server's shop holds (``tests/test_hostile.py`` loads it through the API).
ORDER = "HX-ORD-1"
CUSTOMER = "HX-C-1"
EMAIL = "hostile@example.com"
SKU = "hx-box-01"
DELIVERED = "2025-06-01T10:00:00Z"  # the delivery date of the order rows the corpus writes

# Placeholders the runner fills in at send time.
RETURN_ID = "{return_id}"  # in a path: a fresh return is opened; its token authenticates
# In a body: a fresh return waiting for a reviewer (the runner opens one and uploads
# ``damaged_jpeg``, which the test model grades E_damaged).
REVIEW_SUBJECT = b"@@REVIEW_SUBJECT@@"

BOUNDARY = "hostile-corpus-7d1f3a"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
JSON_TYPE = "application/json"

UPLOAD = "POST /v1/returns/{return_id}/photos"
DOCK = "POST /v1/dock/inspections"
REFERENCE = "PUT /v1/admin/catalog/{sku}/reference"
CATALOG = "PUT /v1/admin/catalog"
ORDERS = "PUT /v1/admin/orders"
RETURNS = "POST /v1/returns"
LOOKUP = "POST /v1/orders/lookup"
VERDICTS = "POST /v1/review/verdicts"
API_KEYS = "POST /v1/admin/api-keys"

NOT_AN_IMAGE = frozenset({"unsupported_media_type"})
TOO_MANY_PIXELS = frozenset({"too_many_pixels"})
POLYGLOT_MARKERS = (b"PK\x03\x04", b"<script", b"<html")


@dataclass(frozen=True)
class Request:
    """One HTTP request, body bytes and all. Header values are latin-1 text (a byte each)."""

    method: str
    path: str
    auth: Auth | None = None
    content: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    chunked: bool = False  # send the body with Transfer-Encoding: chunked


@dataclass(frozen=True)
class Case:
    """One hostile request: ``build()`` makes it, ``before`` are set-up requests."""

    name: str
    route: str
    expect: Expect
    build: Callable[[], Request]
    codes: frozenset[str] = frozenset()  # when set, a 4xx must carry one of these codes
    why: str = ""
    before: tuple[Callable[[], Request], ...] = ()  # set-up requests: never a 500 either
    absent_from_store: tuple[bytes, ...] = ()  # bytes no stored photo may contain
    seeds: tuple[int, ...] = ()  # the stamps of the photos it sends (``read_stamp``)


# ============================================================================ photos
# Every photo a case sends carries its own ``seed``, stamped into its pixels, so no two
# cases store the same file: a request that fails after writing its file leaves an
# orphan the reconciliation can see (content addressing would hide a shared one).


@dataclass(frozen=True)
class Photo:
    """One hostile photo payload; ``make(seed)`` builds it with seed-unique pixels
    (cached: both databases get the same bytes)."""

    name: str
    expect: Expect
    make: Callable[[int], bytes]
    codes: frozenset[str] = frozenset()
    why: str = ""
    absent: tuple[bytes, ...] = ()


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STAMP_BITS = 20  # seeds below 2**20


@functools.cache
def base_rgb() -> np.ndarray:
    """The corpus's ordinary photo: a box on a table, 480 x 360."""
    rgb = item_scene(3, kind="box", size=(480, 360)).rgb
    rgb.flags.writeable = False
    return rgb


def stamped(seed: int) -> np.ndarray:
    """``base_rgb`` with ``seed`` written as black and white 8 x 8 blocks along the top."""
    out = np.array(base_rgb())
    for bit in range(STAMP_BITS):
        out[4:12, 4 + 8 * bit : 12 + 8 * bit] = 235 if seed >> bit & 1 else 20
    return out


def read_stamp(rgb: np.ndarray) -> int | None:
    """The seed ``stamped`` wrote into a (decoded, re-encoded) photo, or None when the
    stamp is not where it was put (a rotated or resized photo, or no stamp at all)."""
    if rgb.ndim != 3 or rgb.shape[0] < 12 or rgb.shape[1] < 12 + 8 * STAMP_BITS:
        return None
    means = [float(rgb[6:10, 6 + 8 * b : 10 + 8 * b].mean()) for b in range(STAMP_BITS)]
    if any(40 < m < 215 for m in means):
        return None
    return sum(1 << b for b, m in enumerate(means) if m >= 215)


def jpeg_of(seed: int) -> bytes:
    return encode(stamped(seed), "JPEG", quality=90)


def png_of(seed: int) -> bytes:
    return encode(stamped(seed), "PNG")


def webp_of(seed: int) -> bytes:
    return encode(stamped(seed), "WEBP", quality=85)


@functools.cache
def good_jpeg() -> bytes:
    """The shop's reference photo of its SKU (seed 0)."""
    return jpeg_of(0)


@functools.cache
def damaged_jpeg() -> bytes:
    """The same box turned red: the tiny test model grades it E_damaged (a review case)."""
    rgb = item_scene(4, kind="box", size=(800, 600)).rgb  # big enough for the quality gate
    out = rgb.astype(np.float32) * np.array([1.0, 0.25, 0.25], np.float32)
    out[..., 0] = np.maximum(out[..., 0], 150)
    return encode(out.clip(0, 255).astype(np.uint8), "JPEG", quality=90)


def _pil(im: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _image(seed: int) -> Image.Image:
    return Image.fromarray(stamped(seed))


def _flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1 :]


def _random(seed: int, n: int) -> bytes:
    return np.random.default_rng(seed).bytes(n)


def raw_png(
    width: int,
    height: int,
    bit_depth: int,
    colour_type: int,
    idat: bytes,
    *,
    extra: Sequence[bytes] = (),
) -> bytes:
    """A PNG from parts: IHDR as given, optional chunks, one IDAT (already deflated)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        PNG_MAGIC
        + png_chunk(b"IHDR", ihdr)
        + b"".join(extra)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def scanlines(pixels: np.ndarray) -> bytes:
    """Filter type 0 scanlines of an HxW(xC) array already in its wire dtype."""
    h = pixels.shape[0]
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(h, -1)
    return np.hstack([np.zeros((h, 1), np.uint8), rows]).tobytes()


def _deflate_rows(row: bytes, count: int, level: int = 9) -> bytes:
    """``row`` repeated ``count`` times, deflated without holding the whole raw image."""
    z = zlib.compressobj(level)
    return b"".join(z.compress(row) for _ in range(count)) + z.flush()


def _png_rows(arr: np.ndarray, bit_depth: int, colour_type: int) -> bytes:
    h, w = arr.shape[:2]
    return raw_png(w, h, bit_depth, colour_type, zlib.compress(scanlines(arr), 6))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def png_from_chunks(chunks: Sequence[tuple[bytes, bytes]]) -> bytes:
    return PNG_MAGIC + b"".join(png_chunk(k, p) for k, p in chunks)


def _insert_after_ihdr(png: bytes, *chunks: bytes) -> bytes:
    cut = 8 + 12 + 13  # magic + IHDR chunk
    return png[:cut] + b"".join(chunks) + png[cut:]


@functools.cache
def _solid_idat(width: int, height: int) -> bytes:
    """The deflated pixels of a solid grey RGB image (about 1000:1)."""
    return _deflate_rows(b"\x00" + b"\x80" * (3 * width), height)


def _solid_png(width: int, height: int, seed: int) -> bytes:
    """A real, solid-grey RGB PNG; the seed goes into a text chunk (the pixels are
    shared, the upload bytes are not)."""
    note = png_chunk(b"tEXt", b"Comment\x00" + str(seed).encode())
    return raw_png(width, height, 8, 2, _solid_idat(width, height), extra=[note])


def _gradient(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth RGB ramp whose blue channel and first pixel carry the seed."""
    xs = (np.arange(width, dtype=np.uint32) * 255 // max(1, width - 1)).astype(np.uint8)
    ys = (np.arange(height, dtype=np.uint32) * 255 // max(1, height - 1)).astype(np.uint8)
    out = np.empty((height, width, 3), np.uint8)
    out[..., 0] = xs[None, :]
    out[..., 1] = ys[:, None]
    out[..., 2] = (seed * 97) % 256
    out[0, 0] = ((seed * 53) % 256, (seed * 101) % 256, (seed * 197) % 256)
    return out


def _jpeg_sof(data: bytes) -> int:
    """Offset of the first SOF0/SOF2 marker in a JPEG Pillow wrote."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        pos = data.find(marker)
        if pos > 0:
            return pos
    raise AssertionError("no SOF marker")


def _jpeg_declaring(width: int, height: int, seed: int) -> bytes:
    data = bytearray(jpeg_of(seed))
    sof = _jpeg_sof(bytes(data))
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _jpeg_header_only(width: int, height: int) -> bytes:
    """SOI, a SOF0 frame header for one component, EOI: no tables, no scan."""
    sof = struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8\xff\xc0" + sof + b"\xff\xd9"


def _jpeg_sos_end(data: bytes) -> int:
    pos = data.find(b"\xff\xda")
    return pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")


def _with_app1(payload: bytes, jpeg: bytes) -> bytes:
    """``jpeg`` with one APP1 segment (EXIF or junk) right after SOI."""
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def tiff(
    entries: Sequence[tuple[int, int, int, bytes]],
    *,
    next_ifd: int = 0,
    declared_count: int | None = None,
) -> bytes:
    """A little-endian TIFF header with IFD0 at offset 8: (tag, type, count, value)."""
    n = len(entries) if declared_count is None else declared_count
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", n)
    for tag, kind, count, value in entries:
        out += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")[:4]
    return out + struct.pack("<I", next_ifd)


def _exif_jpeg(tiff_bytes: bytes, seed: int) -> bytes:
    return _with_app1(b"Exif\x00\x00" + tiff_bytes, jpeg_of(seed))


ORIENTATION, MAKE, EXIF_IFD, GPS_IFD = 0x0112, 0x010F, 0x8769, 0x8825
SHORT, ASCII, LONG, RATIONAL = 3, 2, 4, 5


def _u16(v: int) -> bytes:
    return struct.pack("<H", v)


def _u32(v: int) -> bytes:
    return struct.pack("<I", v)


def _apng(seed: int, frames: int, *, declared_frames: int | None = None) -> bytes:
    im = _image(seed).resize((160, 120))
    others = [Image.fromarray(255 - np.asarray(im)) for _ in range(frames - 1)]
    data = _pil(im, "PNG", save_all=True, append_images=others, duration=100, loop=0)
    if declared_frames is None:
        return data
    chunks = [
        (k, struct.pack(">II", declared_frames, 0) if k == b"acTL" else p)
        for k, p in png_chunks(data)
    ]
    return png_from_chunks(chunks)


def _animated_webp(seed: int, frames: int) -> bytes:
    im = _image(seed).resize((160, 120))
    others = [Image.fromarray(np.roll(np.asarray(im), 7 * i, axis=1)) for i in range(frames - 1)]
    return _pil(im, "WEBP", save_all=True, append_images=others, duration=50, quality=60)


def _svg() -> bytes:
    return (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="400" '
        b'height="300" onload="alert(1)"><script>alert(document.cookie)</script>'
        b'<rect width="400" height="300" fill="red"/></svg>'
    )


def _zip_payload() -> bytes:
    """A small real ZIP archive holding an HTML file."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("index.html", "<html><script>alert(1)</script></html>")
    return buf.getvalue()


HTML = b"<html><body><script>alert('polyglot')</script></body></html>"


def _sixteen_bit(colour_type: int, seed: int) -> bytes:
    rgb = (stamped(seed).astype(np.uint16) * 257).astype(">u2")
    if colour_type == 0:  # grey
        return _png_rows(rgb[..., 1].copy(), 16, 0)
    if colour_type == 6:  # RGBA
        alpha = np.full((*rgb.shape[:2], 1), 65535, ">u2")
        alpha[40:80] = 0  # a transparent band (below the stamp)
        return _png_rows(np.concatenate([rgb, alpha], axis=2), 16, 6)
    return _png_rows(rgb, 16, 2)


def _photos() -> list[Photo]:
    A, R, E = Expect.ACCEPT, Expect.REFUSE, Expect.EITHER
    jpg, png, webp = jpeg_of, png_of, webp_of
    return [
        # ---- controls: the route works and authenticates (a REFUSE is then meaningful)
        Photo("jpeg_ok", A, jpg, why="control"),
        Photo("png_ok", A, png, why="control"),
        Photo("webp_ok", A, webp, why="control"),
        # ---- nothing, or noise behind a real magic
        Photo("zero_bytes", R, lambda s: b""),
        Photo("one_byte", R, lambda s: b"\xff", codes=NOT_AN_IMAGE),
        Photo("random_bytes", R, lambda s: _random(s, 4096), codes=NOT_AN_IMAGE),
        Photo("jpeg_magic_random", R, lambda s: b"\xff\xd8\xff" + _random(s, 4096)),
        Photo("png_magic_random", R, lambda s: PNG_MAGIC + _random(s, 4096)),
        Photo("webp_magic_random", R, lambda s: b"RIFF\x00\x10\x00\x00WEBP" + _random(s, 4096)),
        Photo("jpeg_frame_header_only", R, lambda s: _jpeg_header_only(1000, 1000)),
        Photo("jpeg_declares_0x0", R, lambda s: _jpeg_header_only(0, 0)),
        Photo("png_declares_0x0", R, lambda s: raw_png(0, 0, 8, 2, zlib.compress(b"\x00"))),
        Photo(
            "png_bad_crc",
            R,
            lambda s: _flip(png(s), png(s).find(b"IDAT") + 8),
            why="one flipped byte in the first IDAT",
        ),
        Photo(
            "png_idat_garbage",
            R,
            lambda s: raw_png(64, 64, 8, 2, _random(s, 2048)),
            why="not zlib",
        ),
        Photo(
            "png_bad_colour_type",
            R,
            lambda s: raw_png(32, 32, 8, 5, zlib.compress(bytes(32 * 97))),
            why="colour type 5 does not exist",
        ),
        Photo(
            "png_bad_bit_depth",
            R,
            lambda s: raw_png(32, 32, 7, 2, zlib.compress(bytes(32 * 97))),
            why="bit depth 7 does not exist",
        ),
        # ---- truncations
        Photo("jpeg_cut_at_3", R, lambda s: jpg(s)[:3]),
        Photo("jpeg_cut_at_20", R, lambda s: jpg(s)[:20]),
        Photo("jpeg_cut_after_scan_header", R, lambda s: _cut(jpg(s), _jpeg_sos_end(jpg(s)))),
        Photo("jpeg_cut_half", R, lambda s: _cut(jpg(s), len(jpg(s)) // 2)),
        Photo(
            "jpeg_cut_before_eoi",
            E,
            lambda s: jpg(s)[:-2],
            why="only the EOI marker is missing: libjpeg may decode every pixel",
        ),
        Photo("png_cut_at_8", R, lambda s: png(s)[:8]),
        Photo("png_cut_at_20", R, lambda s: png(s)[:20]),
        Photo("png_cut_after_ihdr", R, lambda s: png(s)[:33]),
        Photo("png_cut_half", R, lambda s: _cut(png(s), len(png(s)) // 2)),
        Photo("png_cut_before_iend", R, lambda s: png(s)[:-12]),
        Photo("webp_cut_at_12", R, lambda s: webp(s)[:12]),
        Photo("webp_cut_at_29", R, lambda s: webp(s)[:29]),
        Photo("webp_cut_half", R, lambda s: _cut(webp(s), len(webp(s)) // 2)),
        Photo("webp_cut_last_byte", R, lambda s: webp(s)[:-1]),
        # ---- polyglots: the trailing half must never reach the store
        Photo(
            "png_then_zip",
            E,
            lambda s: png(s) + _zip_payload(),
            why="a valid PNG; only re-encoded pixels may be stored",
            absent=POLYGLOT_MARKERS,
        ),
        Photo("png_then_html", E, lambda s: png(s) + HTML, absent=POLYGLOT_MARKERS),
        Photo("jpeg_then_zip", E, lambda s: jpg(s) + _zip_payload(), absent=POLYGLOT_MARKERS),
        Photo(
            "jpeg_trailing_junk",
            E,
            lambda s: jpg(s) + _random(s, 5000),
            why="cameras append data after EOI; acceptable when only pixels are kept",
        ),
        Photo(
            "jpeg_html_in_app1",
            E,
            lambda s: _with_app1(HTML, jpg(s)),
            absent=POLYGLOT_MARKERS,
        ),
        Photo("html_then_png", R, lambda s: HTML + png(s), codes=NOT_AN_IMAGE),
        # ---- decompression bombs
        Photo(
            "png_solid_8000x8000",
            E,
            lambda s: _solid_png(8000, 8000, s),
            why="~200 KB for 64 MP: at the pixel limit, it must be answered, not hang",
        ),
        Photo(
            "png_declares_100000x100000",
            R,
            lambda s: png_bomb(100_000, 100_000),
            codes=TOO_MANY_PIXELS,
        ),
        Photo(
            "png_declares_2pow31x1",
            R,
            lambda s: png_bomb(2**31 - 1, 1),
            why="the PNG maximum width",
        ),
        Photo(
            "jpeg_declares_65500x65500",
            R,
            lambda s: _jpeg_declaring(65500, 65500, s),
            codes=TOO_MANY_PIXELS,
        ),
        Photo(
            "webp_declares_16384x16384",
            R,
            lambda s: webp_bomb(16384, 16384),
            codes=TOO_MANY_PIXELS,
        ),
        Photo(
            "png_ztxt_bomb",
            E,
            lambda s: _insert_after_ihdr(png(s), _bomb_chunk(b"zTXt", b"Comment\x00\x00")),
            why="a text chunk inflating to 50 MB",
        ),
        Photo(
            "png_iccp_bomb",
            E,
            lambda s: _insert_after_ihdr(png(s), _bomb_chunk(b"iCCP", b"icc\x00\x00")),
        ),
        Photo(
            "png_idat_inflates_past_image",
            E,
            lambda s: raw_png(
                64, 64, 8, 2, zlib.compress(scanlines(_gradient(64, 64, s)) + bytes(20_000_000), 9)
            ),
            why="64 x 64 declared, 20 MB of pixel data",
        ),
        # ---- extreme dimensions
        Photo("png_65535x1", E, lambda s: _png_rows(_gradient(65535, 1, s), 8, 2)),
        Photo("png_1x65535", E, lambda s: _png_rows(_gradient(1, 65535, s), 8, 2)),
        Photo("png_65535x8", E, lambda s: _png_rows(_gradient(65535, 8, s), 8, 2)),
        Photo("png_1x1", E, lambda s: _png_rows(_gradient(1, 1, s), 8, 2)),
        Photo("jpeg_1x1", E, lambda s: encode(_gradient(1, 1, s), "JPEG")),
        Photo("jpeg_65500x1", E, lambda s: encode(_gradient(65500, 1, s), "JPEG")),
        Photo("jpeg_1x65500", E, lambda s: encode(_gradient(1, 65500, s), "JPEG")),
        Photo("webp_16383x1", E, lambda s: encode(_gradient(16383, 1, s), "WEBP", lossless=True)),
        # ---- bit depths and modes
        Photo("png_16bit_rgb", A, lambda s: _sixteen_bit(2, s)),
        Photo("png_16bit_grey", A, lambda s: _sixteen_bit(0, s)),
        Photo("png_16bit_rgba", A, lambda s: _sixteen_bit(6, s)),
        Photo(
            "png_palette_trns",
            A,
            lambda s: _pil(_image(s).convert("P"), "PNG", transparency=0),
        ),
        Photo("png_grey_alpha", A, lambda s: _pil(_image(s).convert("LA"), "PNG")),
        Photo("png_1bit", A, lambda s: _pil(_image(s).convert("1"), "PNG")),
        Photo(
            "png_mostly_transparent",
            A,
            lambda s: _pil(_transparent(s), "PNG"),
            why="alpha 0 outside the stamp: composited on white",
        ),
        Photo("jpeg_cmyk", A, lambda s: _pil(_image(s).convert("CMYK"), "JPEG", quality=90)),
        Photo("jpeg_grey", A, lambda s: _pil(_image(s).convert("L"), "JPEG", quality=90)),
        Photo(
            "jpeg_progressive",
            A,
            lambda s: _pil(_image(s), "JPEG", quality=90, progressive=True),
        ),
        Photo(
            "webp_lossless_alpha",
            A,
            lambda s: _pil(_image(s).convert("RGBA"), "WEBP", lossless=True),
        ),
        # ---- EXIF (decode.py: a malformed EXIF block is not fatal)
        Photo("exif_orientation_9", A, lambda s: encode(stamped(s), exif_orientation=9)),
        Photo("exif_orientation_0", A, lambda s: encode(stamped(s), exif_orientation=0)),
        Photo("exif_orientation_65535", A, lambda s: encode(stamped(s), exif_orientation=65535)),
        Photo(
            "exif_giant_count",
            A,
            lambda s: _exif_jpeg(
                tiff([(ORIENTATION, SHORT, 1, _u16(6)), (MAKE, ASCII, 0x7FFFFFFF, _u32(0x40))]), s
            ),
        ),
        Photo(
            "exif_declares_65535_entries",
            A,
            lambda s: _exif_jpeg(
                tiff([(ORIENTATION, SHORT, 1, _u16(3))], declared_count=0xFFFF), s
            ),
        ),
        Photo(
            "exif_ifd_loop",
            A,
            lambda s: _exif_jpeg(
                tiff([(ORIENTATION, SHORT, 1, _u16(8)), (EXIF_IFD, LONG, 1, _u32(8))], next_ifd=8),
                s,
            ),
        ),
        Photo(
            "exif_wild_offsets",
            A,
            lambda s: _exif_jpeg(
                tiff(
                    [
                        (ORIENTATION, RATIONAL, 1, _u32(0xFFFF0000)),
                        (GPS_IFD, LONG, 1, _u32(0xFFFFFFF0)),
                        (EXIF_IFD, LONG, 0xFFFFFFFF, _u32(0x7FFFFFFF)),
                    ]
                ),
                s,
            ),
        ),
        Photo(
            "exif_orientation_array",
            A,
            lambda s: _exif_jpeg(tiff([(ORIENTATION, SHORT, 0x10000, _u32(0x10))]), s),
        ),
        Photo("exif_truncated", A, lambda s: _exif_jpeg(b"II*\x00\x08\x00\x00\x00\x05", s)),
        Photo(
            "exif_max_segment_junk",
            A,
            lambda s: _with_app1(b"Exif\x00\x00MM\x00*" + _random(s, 65533 - 10), jpg(s)),
        ),
        Photo(
            "png_exif_chunk_broken",
            A,
            lambda s: _insert_after_ihdr(
                png(s),
                png_chunk(
                    b"eXIf",
                    tiff([(ORIENTATION, SHORT, 1, _u16(9)), (MAKE, ASCII, 0x7FFFFFFF, _u32(8))]),
                ),
            ),
        ),
        # ---- animations (the first frame is the photo)
        Photo("apng_2_frames", A, lambda s: _apng(s, 2)),
        Photo("apng_declares_4g_frames", E, lambda s: _apng(s, 2, declared_frames=0xFFFFFFFF)),
        Photo("webp_animated_2_frames", A, lambda s: _animated_webp(s, 2)),
        Photo("webp_animated_120_frames", E, lambda s: _animated_webp(s, 120)),
        # ---- other formats named .jpg (the part says image/jpeg)
        Photo("gif_as_jpg", R, lambda s: _pil(_image(s), "GIF"), codes=NOT_AN_IMAGE),
        Photo("bmp_as_jpg", R, lambda s: _pil(_image(s), "BMP"), codes=NOT_AN_IMAGE),
        Photo("tiff_as_jpg", R, lambda s: _pil(_image(s), "TIFF"), codes=NOT_AN_IMAGE),
        Photo(
            "ico_as_jpg",
            R,
            lambda s: _pil(_image(s).resize((64, 64)), "ICO"),
            codes=NOT_AN_IMAGE,
        ),
        Photo("svg_as_jpg", R, lambda s: _svg(), codes=NOT_AN_IMAGE),
        Photo(
            "pdf_as_jpg",
            R,
            lambda s: b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
            codes=NOT_AN_IMAGE,
        ),
        Photo(
            "heic_as_jpg",
            R,
            lambda s: b"\x00\x00\x00\x18ftypheic" + bytes(64),
            codes=NOT_AN_IMAGE,
        ),
        Photo("html_as_jpg", R, lambda s: HTML, codes=NOT_AN_IMAGE),
        Photo("zip_as_jpg", R, lambda s: _zip_payload(), codes=NOT_AN_IMAGE),
    ]


def _cut(data: bytes, n: int) -> bytes:
    return data[:n]


@functools.cache
def _bomb_stream() -> bytes:
    """50 MB of zeros, deflated (about 50 KB): the payload of a chunk bomb."""
    return zlib.compress(bytes(50_000_000), 9)


def _bomb_chunk(kind: bytes, head: bytes) -> bytes:
    return png_chunk(kind, head + _bomb_stream())


def _transparent(seed: int) -> Image.Image:
    rgba = np.dstack([stamped(seed), np.zeros(base_rgb().shape[:2], np.uint8)])
    rgba[:16, :, 3] = 255  # only the stamp row is opaque
    return Image.fromarray(rgba)


@functools.cache
def photo_payloads() -> tuple[Photo, ...]:
    photos = tuple(  # each (payload, seed) built once per process, for both databases
        Photo(p.name, p.expect, functools.cache(p.make), p.codes, p.why, p.absent)
        for p in _photos()
    )
    names = [p.name for p in photos]
    assert len(names) == len(set(names)), "photo names must be unique"
    return photos


# ============================================================================ builders
def to_json(value: Any) -> bytes:
    """JSON as a careless client sends it: raw UTF-8, NaN/Infinity tokens allowed. A lone
    surrogate cannot be UTF-8, so a body holding one is written with escapes instead."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, allow_nan=True).encode("ascii")


def json_request(
    method: str, path: str, body: Any, auth: Auth | None = None, *, raw: bytes | None = None
) -> Request:
    content = raw if raw is not None else to_json(body)
    return Request(method, path, auth, content, (("Content-Type", JSON_TYPE),))


def part(
    name: str,
    data: bytes,
    *,
    filename: str | bytes | None = None,
    content_type: str | None = None,
    extra: Sequence[bytes] = (),
) -> bytes:
    """One multipart part: its headers, a blank line, the data (no boundary)."""
    disp = b'Content-Disposition: form-data; name="' + name.encode("utf-8") + b'"'
    if filename is not None:
        raw = filename if isinstance(filename, bytes) else filename.encode("utf-8")
        disp += b'; filename="' + raw + b'"'
    head = [disp]
    if content_type is not None:
        head.append(b"Content-Type: " + content_type.encode("latin-1"))
    head.extend(extra)
    return b"\r\n".join(head) + b"\r\n\r\n" + data


def multipart(parts: Sequence[bytes], boundary: str = BOUNDARY, *, close: bool = True) -> bytes:
    b = boundary.encode("latin-1")
    body = b"".join(b"--" + b + b"\r\n" + p + b"\r\n" for p in parts)
    return body + (b"--" + b + b"--\r\n" if close else b"")


def photo_part(data: bytes, index: int = 0) -> bytes:
    return part("photos", data, filename=f"{index}.jpg", content_type="image/jpeg")


def upload_request(
    photos: Sequence[bytes] = (), *, body: bytes | None = None, content_type: str = MULTIPART
) -> Request:
    content = (
        body if body is not None else multipart([photo_part(p, i) for i, p in enumerate(photos)])
    )
    return Request(
        "POST",
        f"/v1/returns/{RETURN_ID}/photos",
        "shopper",
        content,
        (("Content-Type", content_type),),
    )


def dock_request(
    key: str | None,
    photos: Sequence[bytes] = (),
    *,
    fields: Sequence[tuple[str, bytes]] = (),
    body: bytes | None = None,
    content_type: str = MULTIPART,
) -> Request:
    if body is None:
        parts = [part(name, value) for name, value in fields]
        parts += [photo_part(p, i) for i, p in enumerate(photos)]
        body = multipart(parts)
    headers: tuple[tuple[str, str], ...] = (("Content-Type", content_type),)
    if key is not None:
        headers += (("Idempotency-Key", key),)
    return Request("POST", "/v1/dock/inspections", "dock", body, headers)


def catalog_row(sku: str, **extra: Any) -> dict[str, Any]:
    return {"sku": sku, "category": "box", "name": f"Hostile {sku}", "price": 10.0, **extra}


def catalog_request(rows: Any, *, raw: bytes | None = None) -> Request:
    return json_request("PUT", "/v1/admin/catalog", rows, "admin", raw=raw)


def reference_request(sku: str, data: bytes, content_type: str = "image/jpeg") -> Request:
    return Request(
        "PUT",
        f"/v1/admin/catalog/{sku}/reference",
        "admin",
        data,
        (("Content-Type", content_type),),
    )


def order_row(order_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": "C-HX",
        "customer_email": "orders@example.com",
        "sku": SKU,
        "price": 10.0,
        "delivered_at": DELIVERED,
        **extra,
    }


def csv_request(path: str, text: bytes, content_type: str = "text/csv") -> Request:
    return Request("PUT", path, "admin", text, (("Content-Type", content_type),))


# ============================================================================ cases
def _photo_case(
    route_name: str,
    route: str,
    p: Photo,
    build: Callable[[], Request],
    seed: int,
    before: tuple[Callable[[], Request], ...] = (),
) -> Case:
    return Case(
        f"{route_name}.{p.name}",
        route,
        p.expect,
        build,
        codes=p.codes,
        why=p.why,
        before=before,
        absent_from_store=p.absent,
        seeds=(seed,),
    )


def photo_cases() -> Iterator[Case]:
    """Every photo payload on each of the four routes that take a photo (seeds 1-3999:
    route * 1000 + payload)."""
    for i, p in enumerate(photo_payloads(), start=1):
        yield _photo_case(
            "upload",
            UPLOAD,
            p,
            functools.partial(lambda mk, s: upload_request([mk(s)]), p.make, i),
            i,
        )
        yield _photo_case(
            "dock",
            DOCK,
            p,
            functools.partial(
                lambda mk, s, k: dock_request(k, [mk(s)]), p.make, 1000 + i, f"hx-photo-{i:03d}"
            ),
            1000 + i,
        )
        sku = f"hx-ref-{i:03d}"
        yield _photo_case(
            "reference",
            REFERENCE,
            p,
            functools.partial(lambda mk, s, k: reference_request(k, mk(s)), p.make, 2000 + i, sku),
            2000 + i,
            before=(functools.partial(lambda k: catalog_request([catalog_row(k)]), sku),),
        )
        sku = f"hx-b64-{i:03d}"
        yield _photo_case(
            "catalog_b64",
            CATALOG,
            p,
            functools.partial(
                lambda mk, s, k: catalog_request(
                    [catalog_row(k, reference_photo_base64=base64.b64encode(mk(s)).decode())]
                ),
                p.make,
                3000 + i,
                sku,
            ),
            3000 + i,
        )


@dataclass(frozen=True)
class Field:
    """A string field of a JSON body: its limit and what a schema-valid value gets."""

    name: str
    limit: int | None  # the service's own bound (``declared_limit``), None: unbounded
    valid: Expect  # ACCEPT: stored as given; REFUSE: valid text that matches nothing (404)
    required: bool = True
    shape: Callable[[str], str] = lambda s: s  # e.g. keep an e-mail's @domain
    plain_only: bool = False  # a pattern allows [A-Za-z0-9_.:-] only: odd text is refused
    odd_at_limit: bool = False  # a value at the limit is plausible but not typical (e-mail)


def declared_limit(model: type[BaseModel], name: str) -> int | None:
    """The longest string the service's request model says ``name`` takes: its
    ``maxLength``, or the ``{1,N}`` of its pattern (idempotency keys). The corpus asks the
    service rather than copying numbers, so at and over the limit mean what it declares."""
    prop = model.model_json_schema()["properties"][name]
    for schema in (prop, *prop.get("anyOf", [])):
        if "maxLength" in schema:
            return int(schema["maxLength"])
        found = re.search(r"\{1,(\d+)\}\$?$", str(schema.get("pattern", "")))
        if found:
            return int(found.group(1))
    return None


def _email(local: str) -> str:
    return f"{local}@example.com"


def _sized(n: int, shape: Callable[[str], str]) -> str:
    """A string of exactly ``n`` characters after ``shape`` (for an e-mail: local@domain)."""
    extra = len(shape(""))
    return shape("x" * max(1, n - extra))


STRING_VALUES: tuple[tuple[str, Callable[[Field], Any], Callable[[Field], Expect]], ...] = (
    # (variant, value for the field, expected answer)
    ("len_300", lambda f: _sized(300, f.shape), lambda f: _by_length(f, 300)),
    ("len_10000", lambda f: _sized(10_000, f.shape), lambda f: _by_length(f, 10_000)),
    (
        "at_limit",
        lambda f: _sized(f.limit or 64, f.shape),
        lambda f: _doubtful(f) if f.odd_at_limit else f.valid,
    ),
    (
        "over_limit",
        lambda f: _sized((f.limit or 10_000) + 1, f.shape),
        lambda f: Expect.REFUSE if f.limit else f.valid,
    ),
    ("nul", lambda f: f.shape("ab\x00cd"), lambda f: _doubtful(f)),
    ("lone_surrogate", lambda f: f.shape("ab\ud800cd"), lambda f: _doubtful(f)),
    ("control_chars", lambda f: f.shape("a\x1b[2J\x07\x7fb"), lambda f: _doubtful(f)),
    ("rtl_override", lambda f: f.shape("abc\u202edcba\u200b"), lambda f: _doubtful(f)),
    ("emoji", lambda f: f.shape("返品📦\u200d🔥ü"), lambda f: _odd(f)),
    ("whitespace_only", lambda f: " \t ", lambda f: _blank(f)),
    ("number", lambda f: 12345, lambda f: Expect.REFUSE),
    ("list", lambda f: ["a"], lambda f: Expect.REFUSE),
    ("null", lambda f: None, lambda f: Expect.REFUSE if f.required else Expect.ACCEPT),
)


def _by_size(n: int, limit: int) -> Expect:
    return Expect.REFUSE if n > limit else Expect.ACCEPT


def _by_length(f: Field, n: int) -> Expect:
    return Expect.REFUSE if f.limit is not None and n > f.limit else f.valid


def _doubtful(f: Field) -> Expect:
    """Valid by the schema; a service may still refuse such text (never with a 500)."""
    if f.plain_only:
        return Expect.REFUSE
    return Expect.EITHER if f.valid is Expect.ACCEPT else f.valid


def _odd(f: Field) -> Expect:
    """Printable non-ASCII text: valid wherever the field is not restricted to ASCII."""
    return Expect.REFUSE if f.plain_only else f.valid


def _blank(f: Field) -> Expect:
    """Blank strips to nothing: refused where required, ``None`` where optional."""
    if f.required or f.plain_only:
        return Expect.REFUSE
    return f.valid


def _string_cases(
    prefix: str,
    route: str,
    fields: Sequence[Field],
    make: Callable[[str, Any, int], Request],
    *,
    before: Callable[[int], tuple[Callable[[], Request], ...]] = lambda n: (),
) -> Iterator[Case]:
    """Each string variant in each field; ``make(field, value, n)`` builds the request
    (``n`` numbers the case, for unique ids)."""
    n = 0
    for f in fields:
        for variant, value, expect in STRING_VALUES:
            n += 1
            yield Case(
                f"{prefix}.{f.name}.{variant}",
                route,
                expect(f),
                functools.partial(make, f.name, value(f), n),
                before=before(n),
            )
        n += 1
        raw = b'"ab\xff\xfecd"'
        yield Case(
            f"{prefix}.{f.name}.invalid_utf8",
            route,
            Expect.REFUSE,
            functools.partial(_raw_field, make, f.name, raw, n),
            why="the body is not UTF-8",
        )


def _raw_field(make: Callable[[str, Any, int], Request], name: str, raw: bytes, n: int) -> Request:
    """The request ``make`` builds, with the field's JSON value replaced by raw bytes."""
    req = make(name, "@@RAW@@", n)
    return Request(
        req.method, req.path, req.auth, req.content.replace(b'"@@RAW@@"', raw), req.headers
    )


RETURN_FIELDS = (
    Field("order_id", declared_limit(CreateReturnIn, "order_id"), Expect.REFUSE),
    Field("sku", declared_limit(CreateReturnIn, "sku"), Expect.REFUSE),
    Field("reason", None, Expect.REFUSE),
    Field("note", declared_limit(CreateReturnIn, "note"), Expect.ACCEPT, required=False),
    Field("email", declared_limit(CreateReturnIn, "email"), Expect.REFUSE, shape=_email),
)


def _return_body(**over: Any) -> dict[str, Any]:
    return {"order_id": ORDER, "sku": SKU, "reason": "changed_mind", "email": EMAIL, **over}


def _return_request(field: str, value: Any, n: int) -> Request:
    return json_request("POST", "/v1/returns", _return_body(**{field: value}))


LOOKUP_FIELDS = (
    Field("order_id", declared_limit(OrderLookupIn, "order_id"), Expect.REFUSE),
    Field("email", declared_limit(OrderLookupIn, "email"), Expect.REFUSE, shape=_email),
)


def _lookup_request(field: str, value: Any, n: int) -> Request:
    body = {"order_id": ORDER, "email": EMAIL, field: value}
    return json_request("POST", "/v1/orders/lookup", body)


CATALOG_FIELDS = (
    Field("sku", declared_limit(CatalogItemIn, "sku"), Expect.ACCEPT),
    Field("category", declared_limit(CatalogItemIn, "category"), Expect.ACCEPT),
    Field("name", declared_limit(CatalogItemIn, "name"), Expect.ACCEPT),
    Field("reference_photo_base64", None, Expect.REFUSE, required=False),
)


def _catalog_request(field: str, value: Any, n: int) -> Request:
    return catalog_request([{**catalog_row(f"hx-cs-{n:03d}"), field: value}])


ORDER_FIELDS = (
    Field("order_id", declared_limit(OrderIn, "order_id"), Expect.ACCEPT),
    Field("customer_id", declared_limit(OrderIn, "customer_id"), Expect.ACCEPT),
    Field(
        "customer_email",
        declared_limit(OrderIn, "customer_email"),
        Expect.ACCEPT,
        shape=_email,
        odd_at_limit=True,
    ),
    # Valid text: an unknown SKU (404), or one a catalog case created before (200).
    Field("sku", declared_limit(OrderIn, "sku"), Expect.EITHER),
)


def _order_request(field: str, value: Any, n: int) -> Request:
    row = {**order_row(f"HX-OS-{n:03d}", customer_id=f"C-OS-{n:03d}"), field: value}
    return json_request("PUT", "/v1/admin/orders", [row], "admin")


VERDICT_FIELDS = (
    Field("subject_id", declared_limit(ReviewRequest, "subject_id"), Expect.REFUSE),
    Field("verdict", None, Expect.REFUSE),
    Field("subject_type", None, Expect.REFUSE),
    # The body is a correction: without a grade (and no damage list) it is refused.
    Field("grade", declared_limit(ReviewRequest, "grade"), Expect.EITHER),
    Field("note", declared_limit(ReviewRequest, "note"), Expect.ACCEPT, required=False),
)


def _verdict_body(**over: Any) -> dict[str, Any]:
    body = {"subject_type": "return", "subject_id": "@@REVIEW_SUBJECT@@", "verdict": "correct"}
    return {**body, "grade": "C_good", **over}


def _verdict_request(field: str, value: Any, n: int) -> Request:
    return json_request("POST", "/v1/review/verdicts", _verdict_body(**{field: value}), "reviewer")


KEY_FIELDS = (
    Field("name", declared_limit(ApiKeyRequest, "name"), Expect.ACCEPT, plain_only=True),
    Field("role", None, Expect.REFUSE),
)


def _key_request(field: str, value: Any, n: int) -> Request:
    body = {"name": f"hx-key-{n:03d}", "role": "reviewer", field: value}
    return json_request("POST", "/v1/admin/api-keys", body, "admin")


def field_cases() -> Iterator[Case]:
    """String variants in every string field of every JSON route, then numbers and dates."""
    yield Case(
        "returns.control",
        RETURNS,
        Expect.ACCEPT,
        lambda: json_request("POST", "/v1/returns", _return_body()),
    )
    yield from _string_cases("returns", RETURNS, RETURN_FIELDS, _return_request)
    yield Case(
        "lookup.control", LOOKUP, Expect.ACCEPT, lambda: _lookup_request("order_id", ORDER, 0)
    )
    yield from _string_cases("lookup", LOOKUP, LOOKUP_FIELDS, _lookup_request)
    yield Case(
        "catalog.control",
        CATALOG,
        Expect.ACCEPT,
        lambda: catalog_request([catalog_row("hx-cs-ok")]),
    )
    yield from _string_cases("catalog", CATALOG, CATALOG_FIELDS, _catalog_request)
    yield Case(
        "orders.control",
        ORDERS,
        Expect.ACCEPT,
        lambda: json_request("PUT", "/v1/admin/orders", [order_row("HX-OS-ok")], "admin"),
    )
    yield from _string_cases("orders", ORDERS, ORDER_FIELDS, _order_request)
    yield from _string_cases("verdicts", VERDICTS, VERDICT_FIELDS, _verdict_request)
    yield Case(
        "verdicts.damage_10000_labels",
        VERDICTS,
        Expect.REFUSE,
        lambda: json_request(
            "POST", "/v1/review/verdicts", _verdict_body(damage=["scratch"] * 10_000), "reviewer"
        ),
    )
    yield Case(
        "verdicts.damage_label_10000_chars",
        VERDICTS,
        Expect.REFUSE,
        lambda: json_request(
            "POST", "/v1/review/verdicts", _verdict_body(damage=["x" * 10_000]), "reviewer"
        ),
    )
    yield Case(
        "verdicts.damage_nested_lists",
        VERDICTS,
        Expect.REFUSE,
        lambda: json_request(
            "POST", "/v1/review/verdicts", _verdict_body(damage=[[["a"]]]), "reviewer"
        ),
    )
    yield Case(
        "api_keys.control",
        API_KEYS,
        Expect.ACCEPT,
        lambda: json_request(
            "POST", "/v1/admin/api-keys", {"name": "hx-key-ok", "role": "dock"}, "admin"
        ),
    )
    yield from _string_cases("api_keys", API_KEYS, KEY_FIELDS, _key_request)
    yield from _number_cases()
    yield from _date_cases()


NUMBERS: tuple[tuple[str, Any, Expect, Expect], ...] = (
    # (variant, JSON value, as a price, as a quantity)
    ("negative", -1, Expect.REFUSE, Expect.REFUSE),
    ("negative_zero", -0.0, Expect.ACCEPT, Expect.REFUSE),
    ("zero", 0, Expect.ACCEPT, Expect.REFUSE),
    ("underflow_1e-400", "@@1e-400@@", Expect.ACCEPT, Expect.REFUSE),
    ("huge_1e308", 1e308, Expect.REFUSE, Expect.REFUSE),
    ("overflow_1e309", "@@1e309@@", Expect.REFUSE, Expect.REFUSE),
    ("int_10e30", 10**30, Expect.REFUSE, Expect.REFUSE),
    ("int_2pow63", 2**63, Expect.REFUSE, Expect.REFUSE),
    ("int_400_digits", "@@" + "9" * 400 + "@@", Expect.REFUSE, Expect.REFUSE),
    ("nan", float("nan"), Expect.REFUSE, Expect.REFUSE),
    ("infinity", float("inf"), Expect.REFUSE, Expect.REFUSE),
    ("minus_infinity", float("-inf"), Expect.REFUSE, Expect.REFUSE),
    ("string_nan", "NaN", Expect.REFUSE, Expect.REFUSE),
    ("string_number", "12", Expect.EITHER, Expect.EITHER),
    ("fraction", 1.5, Expect.ACCEPT, Expect.REFUSE),
    ("whole_float", 2.0, Expect.ACCEPT, Expect.EITHER),
    ("at_max", 1_000_000, Expect.ACCEPT, Expect.REFUSE),
    ("quantity_max", 10_000, Expect.ACCEPT, Expect.ACCEPT),
    ("quantity_over_max", 10_001, Expect.ACCEPT, Expect.REFUSE),
    ("boolean", True, Expect.EITHER, Expect.EITHER),
    ("list", [1], Expect.REFUSE, Expect.REFUSE),
    ("object", {"v": 1}, Expect.REFUSE, Expect.REFUSE),
)


def _with_literal(body: bytes) -> bytes:
    """``"@@1e309@@"`` -> ``1e309``: numbers json.dumps cannot write."""
    return re.sub(rb'"@@([0-9eE.+-]+)@@"', rb"\1", body)


def _number_cases() -> Iterator[Case]:
    for i, (variant, value, as_price, as_quantity) in enumerate(NUMBERS):
        yield Case(
            f"catalog.price.{variant}",
            CATALOG,
            as_price,
            functools.partial(
                lambda v, n: catalog_request(
                    None, raw=_with_literal(to_json([catalog_row(f"hx-cn-{n:03d}", price=v)]))
                ),
                value,
                i,
            ),
        )
        for fname, expect in (("price", as_price), ("quantity", as_quantity)):
            yield Case(
                f"orders.{fname}.{variant}",
                ORDERS,
                expect,
                functools.partial(
                    lambda f, v, n: json_request(
                        "PUT",
                        "/v1/admin/orders",
                        None,
                        "admin",
                        raw=_with_literal(to_json([order_row(f"HX-ON-{f}-{n:03d}", **{f: v})])),
                    ),
                    fname,
                    value,
                    i,
                ),
            )
    yield Case(
        "queue.limit_negative",
        "GET /v1/review/queue",
        Expect.REFUSE,
        lambda: Request("GET", "/v1/review/queue?limit=-1", "reviewer"),
    )
    for variant, q in (
        ("limit_huge", "limit=" + "9" * 400),
        ("limit_nan", "limit=nan"),
        ("limit_inf", "limit=inf"),
        ("limit_float", "limit=1.5"),
        ("limit_empty", "limit="),
        ("limit_10000_chars", "limit=" + "1" * 10_000),
        ("sort_unknown", "sort=" + "z" * 300),
        ("sort_nul", "sort=age%00"),
    ):
        yield Case(
            f"queue.{variant}",
            "GET /v1/review/queue",
            Expect.REFUSE,
            functools.partial(lambda qs: Request("GET", f"/v1/review/queue?{qs}", "reviewer"), q),
        )
    yield Case(
        "queue.control",
        "GET /v1/review/queue",
        Expect.ACCEPT,
        lambda: Request("GET", "/v1/review/queue?limit=5&sort=value", "reviewer"),
    )


DATES: tuple[tuple[str, Any, Expect], ...] = (
    ("year_1_plus_14h", "0001-01-01T00:00:00+14:00", Expect.REFUSE),
    ("year_9999_minus_14h", "9999-12-31T23:00:00-14:00", Expect.REFUSE),
    ("year_9999_date_only", "9999-12-31", Expect.EITHER),
    ("year_1_date_only", "0001-01-01", Expect.EITHER),
    ("year_9999_end_utc", "9999-12-31T23:59:59.999999Z", Expect.EITHER),
    ("year_1_start_utc", "0001-01-01T00:00:00Z", Expect.EITHER),
    ("year_1_minus_14h", "0001-01-01T00:00:00-14:00", Expect.EITHER),
    ("year_10000", "10000-01-01T00:00:00Z", Expect.REFUSE),
    ("year_0", "0000-01-01T00:00:00Z", Expect.REFUSE),
    ("expanded_year", "+275760-09-13T00:00:00Z", Expect.REFUSE),
    ("february_30", "2025-02-30T00:00:00Z", Expect.REFUSE),
    ("offset_25h", "2025-01-01T00:00:00+25:00", Expect.REFUSE),
    ("hour_24", "2025-01-01T24:00:00Z", Expect.EITHER),
    ("leap_second", "2016-12-31T23:59:60Z", Expect.EITHER),
    ("no_offset", "2025-01-01T00:00:00", Expect.ACCEPT),
    ("epoch_1e20", 1e20, Expect.REFUSE),
    ("epoch_minus_1e20", -1e20, Expect.REFUSE),
    ("epoch_year_10000", 253402300800, Expect.EITHER),
    ("epoch_nan", float("nan"), Expect.REFUSE),
    ("epoch_infinity", float("inf"), Expect.REFUSE),
    ("text", "yesterday", Expect.REFUSE),
    ("empty", "", Expect.REFUSE),
    ("null", None, Expect.REFUSE),
    ("nul_inside", "2025-01-01\x00T00:00:00Z", Expect.REFUSE),
    ("10000_chars", "2025-01-01T00:00:00" + "0" * 10_000 + "Z", Expect.REFUSE),
)


def _date_cases() -> Iterator[Case]:
    for i, (variant, value, expect) in enumerate(DATES):
        order_id = f"HX-OD-{i:03d}"
        upsert = functools.partial(
            lambda o, v: json_request(
                "PUT", "/v1/admin/orders", [order_row(o, delivered_at=v)], "admin"
            ),
            order_id,
            value,
        )
        yield Case(f"orders.delivered_at.{variant}", ORDERS, expect, upsert)
        if expect is not Expect.REFUSE:
            # An order that was stored with that date: opening a return on it does date
            # arithmetic (return window, history) on the extreme value.
            yield Case(
                f"returns.after_delivery_{variant}",
                RETURNS,
                Expect.EITHER,
                functools.partial(
                    lambda o: json_request(
                        "POST",
                        "/v1/returns",
                        {
                            "order_id": o,
                            "sku": SKU,
                            "reason": "defective",
                            "email": "orders@example.com",
                        },
                    ),
                    order_id,
                ),
                before=(upsert,),
            )
            yield Case(
                f"lookup.after_delivery_{variant}",
                LOOKUP,
                Expect.EITHER,
                functools.partial(
                    lambda o: json_request(
                        "POST", "/v1/orders/lookup", {"order_id": o, "email": "orders@example.com"}
                    ),
                    order_id,
                ),
                before=(upsert,),
            )
        csv_text = (
            "order_id,customer_id,customer_email,sku,price,delivered_at\n"
            f"HX-ODC-{i:03d},C-1,orders@example.com,{SKU},10.0,{_csv_cell(value)}\n"
        )
        yield Case(
            f"orders_csv.delivered_at.{variant}",
            ORDERS,
            Expect.REFUSE if value in (None, "") else expect,
            functools.partial(
                lambda t: csv_request("/v1/admin/orders", t.encode("utf-8")), csv_text
            ),
            why="an empty CSV cell is a missing value",
        )


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if "," in text else text


# ---------------------------------------------------------------------------- bodies
JSON_ROUTES: tuple[tuple[str, str, str, Auth | None], ...] = (
    # (case prefix, method, path, auth)
    ("returns", "POST", "/v1/returns", None),
    ("lookup", "POST", "/v1/orders/lookup", None),
    ("catalog", "PUT", "/v1/admin/catalog", "admin"),
    ("orders", "PUT", "/v1/admin/orders", "admin"),
    ("verdicts", "POST", "/v1/review/verdicts", "reviewer"),
    ("api_keys", "POST", "/v1/admin/api-keys", "admin"),
)


def _valid_body(prefix: str) -> bytes:
    return {
        "returns": lambda: to_json(_return_body()),
        "lookup": lambda: to_json({"order_id": ORDER, "email": EMAIL}),
        "catalog": lambda: to_json([catalog_row("hx-body-sku")]),
        "orders": lambda: to_json([order_row("HX-BODY-1")]),
        "verdicts": lambda: to_json(_verdict_body()),
        "api_keys": lambda: to_json({"name": "hx-body-key", "role": "dock"}),
    }[prefix]()


DEPTH = 100_000


def _bodies(prefix: str) -> Iterator[tuple[str, Callable[[], bytes], str, Expect]]:
    """(variant, body, content type, expectation) for one JSON route."""
    valid = functools.partial(_valid_body, prefix)
    array_route = prefix in ("catalog", "orders")
    yield "nested_100000_open_brackets", lambda: b"[" * DEPTH, JSON_TYPE, Expect.REFUSE
    yield "nested_100000_arrays", lambda: b"[" * DEPTH + b"]" * DEPTH, JSON_TYPE, Expect.REFUSE
    yield (
        "nested_100000_objects",
        lambda: b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
        JSON_TYPE,
        Expect.REFUSE,
    )
    yield (
        "nested_100000_in_a_field",
        lambda: (
            valid()[:-1] + b',"x":' + b"[" * DEPTH + b"]" * DEPTH + b"}"
            if not array_route
            else b'[{"x":' + b"[" * DEPTH + b"]" * DEPTH + b"}]"
        ),
        JSON_TYPE,
        Expect.REFUSE,
    )
    yield "empty", lambda: b"", JSON_TYPE, Expect.REFUSE
    yield "null", lambda: b"null", JSON_TYPE, Expect.REFUSE
    yield "string", lambda: b'"hello"', JSON_TYPE, Expect.REFUSE
    yield "number_1e999", lambda: b"1e999", JSON_TYPE, Expect.REFUSE
    yield "nan_token", lambda: b"NaN", JSON_TYPE, Expect.REFUSE
    yield (
        "wrong_top_level",
        lambda: b"{}" if array_route else b"[]",
        JSON_TYPE,
        Expect.REFUSE,
    )
    yield "trailing_junk", lambda: valid() + b"}{x", JSON_TYPE, Expect.REFUSE
    yield "truncated", lambda: valid()[:-3], JSON_TYPE, Expect.REFUSE
    yield "single_quotes", lambda: valid().replace(b'"', b"'"), JSON_TYPE, Expect.REFUSE
    yield "nul_byte_body", lambda: b"\x00" * 64, JSON_TYPE, Expect.REFUSE
    yield "invalid_utf8_body", lambda: b"\xff\xfe\xfd" + valid(), JSON_TYPE, Expect.REFUSE
    yield "utf8_bom", lambda: b"\xef\xbb\xbf" + valid(), JSON_TYPE, Expect.EITHER
    yield (
        "utf16_declared",
        lambda: valid().decode("utf-8").encode("utf-16"),
        "application/json; charset=utf-16",
        Expect.EITHER,
    )
    yield (
        "unknown_field",
        lambda: (
            valid()[:-1] + b',"x_unknown":1}'
            if not array_route
            else valid()[:-2] + b',"x_unknown":1}]'
        ),
        JSON_TYPE,
        Expect.REFUSE,
    )
    yield (
        "duplicate_keys",
        lambda: (
            valid()[:-1] + b',"' + valid()[2:].split(b'"', 1)[0] + b'":12}'
            if not array_route
            else b"[" + valid()[1:-2] + b',"price":-5}]'
        ),
        JSON_TYPE,
        Expect.REFUSE,
    )
    yield "text_plain", valid, "text/plain", Expect.EITHER
    yield (
        "form_urlencoded",
        lambda: b"order_id=x&sku=y",
        "application/x-www-form-urlencoded",
        Expect.REFUSE,
    )
    yield (
        "multipart",
        lambda: multipart([part("order_id", b"x")]),
        MULTIPART,
        Expect.REFUSE,
    )
    yield "xml", lambda: b"<?xml version='1.0'?><a>1</a>", "application/xml", Expect.REFUSE
    yield "no_content_type", valid, "", Expect.EITHER
    yield (
        "content_type_10000_chars",
        valid,
        "application/json; x=" + "a" * 10_000,
        Expect.EITHER,
    )
    yield "content_type_garbage", valid, "\xff;;;=/", Expect.EITHER
    if prefix in ("returns", "lookup", "verdicts"):  # the 1 MiB JSON cap (admin: 64 MiB)
        yield (
            "over_size_cap",
            lambda: b'{"note":"' + b"x" * (1024 * 1024) + b'"}',
            JSON_TYPE,
            Expect.REFUSE,
        )
    if array_route:  # every row invalid: the answer lists them, it must still be bounded
        yield (
            "rows_20000",
            lambda: to_json([{"sku": "x"}] * 20_000),
            JSON_TYPE,
            Expect.REFUSE,
        )


def body_cases() -> Iterator[Case]:
    for prefix, method, path, auth in JSON_ROUTES:
        route = f"{method} {path}"
        for variant, body, ctype, expect in _bodies(prefix):
            headers = (("Content-Type", ctype),) if ctype else ()
            yield Case(
                f"{prefix}.body.{variant}",
                route,
                expect,
                functools.partial(
                    lambda m, p, a, b, h: Request(m, p, a, b(), h),
                    method,
                    path,
                    auth,
                    body,
                    headers,
                ),
            )
        if path.startswith("/v1/admin/"):
            continue  # the admin cap is 64 MiB: too much to stream in a test
        yield Case(
            f"{prefix}.body.chunked_over_cap",
            route,
            Expect.REFUSE,
            functools.partial(
                lambda m, p, a: Request(
                    m,
                    p,
                    a,
                    b"[" + b" " * (1024 * 1024 + 1024) + b"]",
                    (("Content-Type", JSON_TYPE),),
                    chunked=True,
                ),
                method,
                path,
                auth,
            ),
            why="no Content-Length: the cap must apply while the body streams",
        )


# ---------------------------------------------------------------------------- CSV
CSV_HEAD = {
    "catalog": "sku,category,name,price",
    "orders": "order_id,customer_id,customer_email,sku,price,delivered_at",
}


def _csv_row(kind: str, n: int, **over: str) -> str:
    if kind == "catalog":
        cells = {"sku": f"hx-csv-{n:03d}", "category": "box", "name": "CSV item", "price": "9.5"}
    else:
        cells = {
            "order_id": f"HX-CSV-{n:03d}",
            "customer_id": "C-CSV",
            "customer_email": "orders@example.com",
            "sku": SKU,
            "price": "9.5",
            "delivered_at": DELIVERED,
        }
    cells.update(over)
    return ",".join(cells.values())


def _csv(kind: str, n: int, *, head: str | None = None, tail: str = "\n", **over: str) -> bytes:
    """A header line and one row; ``over`` replaces cells, ``{text}`` names the kind's
    free-text column (catalog: name, orders: customer_id)."""
    text_field = "name" if kind == "catalog" else "customer_id"
    if "text" in over:
        over[text_field] = over.pop("text")
    header = CSV_HEAD[kind] if head is None else head
    return (header + "\n" + _csv_row(kind, n, **over) + tail).encode("utf-8")


CSV_VARIANTS: tuple[tuple[str, Callable[[str, int], bytes], Expect], ...] = (
    # (variant, body for (kind, row number), expectation)
    ("control", lambda kind, n: _csv(kind, n), Expect.ACCEPT),
    ("field_300_chars", lambda kind, n: _csv(kind, n, text="x" * 300), Expect.REFUSE),
    ("field_10000_chars", lambda kind, n: _csv(kind, n, text="x" * 10_000), Expect.REFUSE),
    ("field_200000_chars", lambda kind, n: _csv(kind, n, text="x" * 200_000), Expect.REFUSE),
    ("nul_in_field", lambda kind, n: _csv(kind, n, text="a\x00b"), Expect.EITHER),
    ("emoji", lambda kind, n: _csv(kind, n, text="返品📦"), Expect.ACCEPT),
    ("formula_injection", lambda kind, n: _csv(kind, n, text="=HYPERLINK(1)"), Expect.EITHER),
    ("price_nan", lambda kind, n: _csv(kind, n, price="nan"), Expect.REFUSE),
    ("price_1e309", lambda kind, n: _csv(kind, n, price="1e309"), Expect.REFUSE),
    ("price_negative", lambda kind, n: _csv(kind, n, price="-1"), Expect.REFUSE),
    ("invalid_utf8", lambda kind, n: _csv(kind, n, tail="\n") + b"\xff\xfe\n", Expect.REFUSE),
    ("header_only", lambda kind, n: (CSV_HEAD[kind] + "\n").encode(), Expect.EITHER),
    ("empty", lambda kind, n: b"", Expect.REFUSE),
    ("no_header", lambda kind, n: (_csv_row(kind, n) + "\n").encode(), Expect.REFUSE),
    ("unbalanced_quote", lambda kind, n: _csv(kind, n, head=CSV_HEAD[kind] + '\n"'), Expect.REFUSE),
    ("extra_cells", lambda kind, n: _csv(kind, n, tail=",x,y,z\n"), Expect.EITHER),
    (
        "columns_5000",
        lambda kind, n: _csv(kind, n, head=CSV_HEAD[kind] + "".join(f",c{i}" for i in range(5000))),
        Expect.EITHER,
    ),
    ("cr_line_endings", lambda kind, n: _csv(kind, n).replace(b"\n", b"\r"), Expect.EITHER),
    ("bom", lambda kind, n: b"\xef\xbb\xbf" + _csv(kind, n), Expect.ACCEPT),
)


def csv_cases() -> Iterator[Case]:
    n = 0
    for kind in ("catalog", "orders"):
        path = f"/v1/admin/{kind}"
        for variant, make, expect in CSV_VARIANTS:
            n += 1
            yield Case(
                f"{kind}_csv.{variant}",
                f"PUT {path}",
                expect,
                functools.partial(
                    lambda p, mk, k, i: csv_request(p, mk(k, i)), path, make, kind, n
                ),
            )
        n += 1
        yield Case(
            f"{kind}_csv.latin1_declared",
            f"PUT {path}",
            Expect.EITHER,
            functools.partial(
                lambda p, k, i: csv_request(p, _csv(k, i), "text/csv; charset=latin-1"),
                path,
                kind,
                n,
            ),
        )


# ---------------------------------------------------------------------------- dock form
def dock_form_cases() -> Iterator[Case]:
    """Seeds 5001-5299."""
    jpg = jpeg_of
    rid = declared_limit(InspectionRequest, "return_id") or 200
    station = declared_limit(InspectionRequest, "station_id") or 100
    key_max = declared_limit(InspectionRequest, "idempotency_key") or 128
    fields: list[tuple[str, str, bytes, Expect]] = [
        # (variant, field, value, expectation)
        ("return_id_unknown", "return_id", b"ret_does_not_exist", Expect.ACCEPT),
        ("return_id_at_limit", "return_id", b"x" * rid, Expect.ACCEPT),
        ("return_id_over_limit", "return_id", b"x" * (rid + 1), Expect.REFUSE),
        ("return_id_300_chars", "return_id", b"x" * 300, _by_size(300, rid)),
        ("return_id_10000_chars", "return_id", b"x" * 10_000, Expect.REFUSE),
        ("return_id_nul", "return_id", b"ret_\x00abc", Expect.EITHER),
        ("return_id_invalid_utf8", "return_id", b"ret_\xff\xfe", Expect.EITHER),
        ("return_id_emoji", "return_id", "ret_📦".encode(), Expect.ACCEPT),
        ("return_id_blank", "return_id", b"   ", Expect.ACCEPT),
        ("station_id_at_limit", "station_id", b"s" * station, Expect.ACCEPT),
        ("station_id_over_limit", "station_id", b"s" * (station + 1), Expect.REFUSE),
        ("station_id_300_chars", "station_id", b"s" * 300, _by_size(300, station)),
        ("station_id_nul", "station_id", b"st\x00ation", Expect.EITHER),
        ("station_id_emoji", "station_id", "dock 📦".encode(), Expect.ACCEPT),
        ("idempotency_key_field_at_limit", "idempotency_key", b"f" * key_max, Expect.ACCEPT),
        ("idempotency_key_field_over", "idempotency_key", b"f" * (key_max + 1), Expect.REFUSE),
        ("idempotency_key_field_spaces", "idempotency_key", b"a key with spaces", Expect.REFUSE),
        ("unknown_text_field", "color", b"blue", Expect.ACCEPT),
    ]
    for i, (variant, name, value, expect) in enumerate(fields):
        key = None if name == "idempotency_key" else f"hx-form-{i:03d}"
        yield Case(
            f"dock.form.{variant}",
            DOCK,
            expect,
            functools.partial(
                lambda k, f, v, s: dock_request(k, [jpg(s)], fields=[(f, v)]),
                key,
                name,
                value,
                5001 + i,
            ),
            seeds=(5001 + i,),
        )
    headers: list[tuple[str, str, Expect]] = [
        ("key_at_limit", "h" * key_max, Expect.ACCEPT),
        ("key_over_limit", "h" * (key_max + 1), Expect.REFUSE),
        ("key_10000_chars", "k" * 10_000, Expect.REFUSE),
        ("key_latin1_bytes", "k\xff\xfe", Expect.REFUSE),
        ("key_empty", "", Expect.REFUSE),
    ]
    for i, (variant, key, expect) in enumerate(headers):
        yield Case(
            f"dock.header.{variant}",
            DOCK,
            expect,
            functools.partial(lambda k, s: dock_request(k, [jpg(s)]), key, 5101 + i),
            seeds=(5101 + i,),
        )
    yield Case(
        "dock.no_idempotency_key",
        DOCK,
        Expect.REFUSE,
        lambda: dock_request(None, [jpg(5200)]),
        seeds=(5200,),
    )
    # Replays: the same key and photos answer the stored result; other photos are a 409.
    replay = functools.partial(lambda: dock_request("hx-replay", [jpg(5201)]))
    yield Case("dock.replay_first", DOCK, Expect.ACCEPT, replay, seeds=(5201,))
    yield Case("dock.replay_same", DOCK, Expect.ACCEPT, replay, before=(replay,), seeds=(5201,))
    yield Case(
        "dock.replay_other_photos",
        DOCK,
        Expect.REFUSE,
        lambda: dock_request("hx-replay", [png_of(5202)]),
        codes=frozenset({"idempotency_conflict"}),
        before=(replay,),
        seeds=(5201, 5202),
    )
    yield Case(
        "dock.replay_other_return",
        DOCK,
        Expect.REFUSE,
        lambda: dock_request("hx-replay", [jpg(5201)], fields=[("return_id", b"ret_other")]),
        codes=frozenset({"idempotency_conflict"}),
        before=(replay,),
        seeds=(5201,),
    )


# ---------------------------------------------------------------------------- multipart
# Where the dock answers otherwise: it grades the photos it is sent, duplicates included.
DOCK_MULTIPART_EXPECT = {"same_photo_twice": Expect.EITHER}


def multipart_cases() -> Iterator[Case]:
    """Seeds 6001-6999."""
    jpg = jpeg_of
    raw: list[tuple[str, Callable[[int], bytes], str, Expect, frozenset[str]]] = [
        # (variant, body, content type, expectation, codes)
        (
            "no_boundary",
            lambda s: multipart([photo_part(jpg(s))]),
            "multipart/form-data",
            Expect.REFUSE,
            frozenset(),
        ),
        (
            "empty_boundary",
            lambda s: multipart([photo_part(jpg(s))]),
            "multipart/form-data; boundary=",
            Expect.REFUSE,
            frozenset(),
        ),
        (
            "wrong_boundary",
            lambda s: multipart([photo_part(jpg(s))], "some-other-boundary"),
            MULTIPART,
            Expect.REFUSE,
            frozenset(),
        ),
        (
            "unterminated_part",
            lambda s: b"--" + BOUNDARY.encode() + b"\r\n" + photo_part(jpg(s))[: len(jpg(s)) // 2],
            MULTIPART,
            Expect.REFUSE,
            frozenset(),
        ),
        (
            "no_closing_boundary",
            lambda s: multipart([photo_part(jpg(s))], close=False),
            MULTIPART,
            Expect.EITHER,
            frozenset(),
        ),
        ("empty_body", lambda s: b"", MULTIPART, Expect.REFUSE, frozenset()),
        (
            "closing_boundary_only",
            lambda s: b"--" + BOUNDARY.encode() + b"--\r\n",
            MULTIPART,
            Expect.REFUSE,
            frozenset(),
        ),
        (
            "1000_tiny_text_parts",
            lambda s: multipart([part(f"f{i}", b"x") for i in range(1000)] + [photo_part(jpg(s))]),
            MULTIPART,
            Expect.REFUSE,
            frozenset(),
        ),
        (
            "1000_tiny_file_parts",
            lambda s: multipart([photo_part(b"\xff\xd8\xff", i) for i in range(1000)]),
            MULTIPART,
            Expect.REFUSE,
            frozenset(),
        ),
        (
            "7_photos",
            lambda s: multipart(
                [photo_part(jpg(s)[:-2] + bytes([i]) + b"\xff\xd9", i) for i in range(7)]
            ),
            MULTIPART,
            Expect.REFUSE,
            frozenset({"too_many_photos"}),
        ),
        (
            "photo_without_filename",
            lambda s: multipart([part("photos", jpg(s), content_type="image/jpeg")]),
            MULTIPART,
            Expect.REFUSE,
            frozenset(),
        ),
        (
            "text_where_file_expected",
            lambda s: multipart([part("photos", b"not a file")]),
            MULTIPART,
            Expect.REFUSE,
            frozenset({"invalid_field"}),
        ),
        (
            "file_in_wrong_field",
            lambda s: multipart(
                [part("photo", jpg(s), filename="p.jpg", content_type="image/jpeg")]
            ),
            MULTIPART,
            Expect.REFUSE,
            frozenset({"invalid_field"}),
        ),
        (
            "no_content_disposition",
            lambda s: multipart([b"Content-Type: image/jpeg\r\n\r\n" + jpg(s)]),
            MULTIPART,
            Expect.REFUSE,
            frozenset(),
        ),
        (
            "garbage_part_headers",
            lambda s: multipart(
                [b"\x00\xff: \xfe\r\nContent-Disposition: form-data\r\n\r\n" + jpg(s)]
            ),
            MULTIPART,
            Expect.REFUSE,
            frozenset(),
        ),
        (
            "part_header_10000_chars",
            lambda s: multipart(
                [part("photos", jpg(s), filename="p.jpg", extra=[b"X-Pad: " + b"p" * 10_000])]
            ),
            MULTIPART,
            Expect.EITHER,
            frozenset(),
        ),
        (
            "boundary_200_chars",
            lambda s: multipart([photo_part(jpg(s))], "b" * 200),
            "multipart/form-data; boundary=" + "b" * 200,
            Expect.EITHER,
            frozenset(),
        ),
        (
            "quoted_boundary",
            lambda s: multipart([photo_part(jpg(s))], "a'()+_,-./:=?"),
            'multipart/form-data; boundary="a\'()+_,-./:=?"',
            Expect.EITHER,
            frozenset(),
        ),
        (
            "base64_transfer_encoding",
            lambda s: multipart(
                [
                    part(
                        "photos",
                        base64.b64encode(jpg(s)),
                        filename="p.jpg",
                        extra=[b"Content-Transfer-Encoding: base64"],
                    )
                ]
            ),
            MULTIPART,
            Expect.EITHER,
            frozenset(),
        ),
        (
            "filename_traversal",
            lambda s: multipart([part("photos", jpg(s), filename="../../../../etc/passwd.jpg")]),
            MULTIPART,
            Expect.ACCEPT,
            frozenset(),
        ),
        (
            "filename_10000_chars",
            lambda s: multipart([part("photos", jpg(s), filename="f" * 10_000 + ".jpg")]),
            MULTIPART,
            Expect.EITHER,
            frozenset(),
        ),
        (
            "filename_nul_and_invalid_utf8",
            lambda s: multipart([part("photos", jpg(s), filename=b"a\x00b\xff\xfe.jpg")]),
            MULTIPART,
            Expect.EITHER,
            frozenset(),
        ),
        (
            "filename_empty",
            lambda s: multipart([part("photos", jpg(s), filename="")]),
            MULTIPART,
            Expect.EITHER,
            frozenset(),
        ),
        (
            "declared_type_gif",
            lambda s: multipart(
                [part("photos", jpg(s), filename="p.gif", content_type="image/gif")]
            ),
            MULTIPART,
            Expect.ACCEPT,
            frozenset(),
        ),
        (
            "same_photo_twice",
            lambda s: multipart([photo_part(jpg(s), 0), photo_part(jpg(s), 1)]),
            MULTIPART,
            Expect.REFUSE,
            frozenset(),
        ),
        (
            "one_good_one_truncated",
            lambda s: multipart([photo_part(jpg(s), 0), photo_part(png_of(s)[:500], 1)]),
            MULTIPART,
            Expect.REFUSE,
            frozenset(),
        ),
        (
            "photo_over_12mib",
            lambda s: multipart([photo_part(jpg(s)[:-2] + bytes(12 * 1024 * 1024) + b"\xff\xd9")]),
            MULTIPART,
            Expect.REFUSE,
            frozenset({"too_large"}),
        ),
        ("json_body", lambda s: b'{"photos": []}', JSON_TYPE, Expect.REFUSE, NOT_AN_IMAGE),
        ("raw_jpeg_body", jpg, "image/jpeg", Expect.REFUSE, NOT_AN_IMAGE),
        (
            "no_content_type",
            lambda s: multipart([photo_part(jpg(s))]),
            "",
            Expect.REFUSE,
            NOT_AN_IMAGE,
        ),
        (
            "multipart_mixed",
            lambda s: multipart([photo_part(jpg(s))]),
            f"multipart/mixed; boundary={BOUNDARY}",
            Expect.REFUSE,
            NOT_AN_IMAGE,
        ),
        (
            "urlencoded",
            lambda s: b"photos=" + base64.b64encode(jpg(s)[:100]),
            "application/x-www-form-urlencoded",
            Expect.REFUSE,
            NOT_AN_IMAGE,
        ),
    ]
    for i, (variant, body, ctype, expect, codes) in enumerate(raw):
        yield Case(
            f"upload.multipart.{variant}",
            UPLOAD,
            expect,
            functools.partial(
                lambda b, c, s: upload_request(body=b(s), content_type=c), body, ctype, 6001 + i
            ),
            codes=codes,
            seeds=(6001 + i,),
        )
        yield Case(
            f"dock.multipart.{variant}",
            DOCK,
            DOCK_MULTIPART_EXPECT.get(variant, expect),
            functools.partial(
                lambda b, c, k, s: dock_request(k, body=b(s), content_type=c),
                body,
                ctype,
                f"hx-mp-{i:03d}",
                6501 + i,
            ),
            codes=codes,
            seeds=(6501 + i,),
        )
    yield Case(
        "upload.multipart.chunked",
        UPLOAD,
        Expect.ACCEPT,
        lambda: Request(
            "POST",
            f"/v1/returns/{RETURN_ID}/photos",
            "shopper",
            multipart([photo_part(jpg(6900))]),
            (("Content-Type", MULTIPART),),
            chunked=True,
        ),
        seeds=(6900,),
    )
    yield Case(
        "reference.wrong_content_type",
        REFERENCE,
        Expect.ACCEPT,
        lambda: reference_request("hx-ref-ctype", jpg(6901), "text/plain"),
        why="the type is sniffed from the bytes",
        before=(lambda: catalog_request([catalog_row("hx-ref-ctype")]),),
        seeds=(6901,),
    )
    yield Case(
        "reference.replaced",
        REFERENCE,
        Expect.ACCEPT,
        lambda: reference_request("hx-ref-twice", jpg(6903)),
        why="the first reference photo's file must not outlive its row",
        before=(
            lambda: catalog_request([catalog_row("hx-ref-twice")]),
            lambda: reference_request("hx-ref-twice", jpg(6902)),
        ),
        seeds=(6902, 6903),
    )
    yield Case(
        "reference.unknown_sku",
        REFERENCE,
        Expect.REFUSE,
        lambda: reference_request("hx-no-such-sku", jpg(6904)),
        seeds=(6904,),
    )
    yield Case(
        "reference.over_12mib",
        REFERENCE,
        Expect.REFUSE,
        lambda: reference_request(SKU, b"\xff\xd8\xff" + bytes(13 * 1024 * 1024)),
        codes=frozenset({"too_large"}),
    )
    yield Case(
        "catalog_b64.not_base64",
        CATALOG,
        Expect.REFUSE,
        lambda: catalog_request(
            [catalog_row("hx-b64-bad", reference_photo_base64="*** not base64 ***")]
        ),
    )
    yield Case(
        "catalog_b64.base64_with_newlines",
        CATALOG,
        Expect.EITHER,
        lambda: catalog_request(
            [
                catalog_row(
                    "hx-b64-nl", reference_photo_base64=base64.encodebytes(jpg(6905)).decode()
                )
            ]
        ),
        seeds=(6905,),
    )


# ---------------------------------------------------------------------------- params
def param_cases() -> Iterator[Case]:
    """Path and query parameters of the read routes (staff credentials, so the lookup runs)."""
    ids = [
        ("10000_chars", "x" * 10_000),
        ("nul", "%00"),
        ("nul_inside", "ret_%00abc"),
        ("invalid_utf8", "%FF%FE"),
        ("lone_surrogate", "%ED%A0%80"),
        ("emoji", "%F0%9F%93%A6"),
        ("sql", "1'%20OR%20'1'='1"),
    ]
    for variant, value in ids:
        for prefix, path, auth in (
            ("get_return", f"/v1/returns/{value}", "reviewer"),
            ("get_photo", f"/v1/photos/{value}", "reviewer"),
            ("heatmap", f"/v1/photos/{value}/heatmap", "reviewer"),
            ("review_item", f"/v1/review/items/return/{value}", "reviewer"),
            ("review_inspection", f"/v1/review/items/inspection/{value}", "reviewer"),
            ("reference_sku", f"/v1/admin/catalog/{value}/reference", "admin"),
            ("revoke_key", f"/v1/admin/api-keys/{value}", "admin"),
        ):
            method = {"reference_sku": "PUT", "revoke_key": "DELETE"}.get(prefix, "GET")
            content = functools.partial(jpeg_of, 7000) if prefix == "reference_sku" else bytes
            yield Case(
                f"{prefix}.path_{variant}",
                f"{method} {path.replace(value, '{id}')}",
                Expect.REFUSE,
                functools.partial(
                    lambda m, p, a, c: Request(m, p, a, c()), method, path, auth, content
                ),
            )
    for variant, label in (
        ("10000_chars", "x" * 10_000),
        ("nul", "%00"),
        ("emoji", "%F0%9F%93%A6"),
        ("empty", ""),
    ):
        yield Case(
            f"heatmap.label_{variant}",
            "GET /v1/photos/{id}/heatmap",
            Expect.REFUSE,
            functools.partial(
                lambda q: Request("GET", f"/v1/photos/pho_unknown/heatmap?label={q}", "reviewer"),
                label,
            ),
        )
    yield Case(
        "api_keys.list_control",
        "GET /v1/admin/api-keys",
        Expect.ACCEPT,
        lambda: Request("GET", "/v1/admin/api-keys", "admin"),
    )


# ============================================================================ corpus
def corpus() -> tuple[Case, ...]:
    """Every case, in the order the runner sends them (names are unique)."""
    cases = (
        *photo_cases(),
        *multipart_cases(),
        *dock_form_cases(),
        *field_cases(),
        *body_cases(),
        *csv_cases(),
        *param_cases(),
    )
    names = [c.name for c in cases]
    dupes = sorted({n for n in names if names.count(n) > 1})
    assert not dupes, f"duplicate case names: {dupes}"
    return cases


@functools.cache
def cases_by_seed() -> dict[int, list[str]]:
    """Seed -> the cases that send a photo stamped with it (to name an orphan file)."""
    out: dict[int, list[str]] = {}
    for case in corpus():
        for seed in case.seeds:
            out.setdefault(seed, []).append(case.name)
    return out
