"""Lossless metadata removal from an uploaded JPEG, for the photo store.

The store keeps no byte a shopper chose beyond the picture itself: no EXIF (GPS, camera
serial), XMP, ICC profile, comment or any other APPn payload, and nothing after the end
of the image. The general way is to re-encode the decoded pixels
(``serving.storage.photostore.encode_clean_jpeg``): ~5 ms of CPU per 1600 px photo, and
a second generation of JPEG loss. When the upload is a plain JPEG whose decode gave the
stored pixels unchanged, rewriting its marker segments without the metadata gives a
file that decodes to exactly the same pixels, for the cost of one pass over the bytes.

:func:`clean_upload` is the one place that decides when that is exact (and when the
whole upload is small enough to keep); the stores call
it and re-encode when it answers None. :func:`strip_metadata` does the rewrite: it keeps
SOI, DQT, DHT, DRI, the frame header (SOF0/1/2, 8-bit, three components), every scan
(SOS and its entropy-coded data, with the DHT/DQT/DRI between progressive scans) and EOI,
and drops APP0..APP15, COM and whatever follows EOI. Anything it does not fully
understand answers None, never an exception.

What stays is what the decoder reads to produce pixels; it is not a proof that no
byte is hidden in the entropy-coded data (an encoder may pad a scan with bytes the
decoder skips). The segments that carry metadata by design are all gone.
"""

from __future__ import annotations

import re

from vision.types import DecodedPhoto

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
DQT, DHT, DRI = 0xDB, 0xC4, 0xDD
APP14 = 0xEE  # Adobe: its transform flag decides whether 3 components are YCbCr or RGB
COM = 0xFE
# Baseline, extended sequential and progressive Huffman frames. Lossless, hierarchical,
# arithmetic-coded and JPEG-LS frames are rare enough to take the re-encode path.
FRAMES = frozenset({0xC0, 0xC1, 0xC2})
TABLES = frozenset({DQT, DHT, DRI})  # kept, before the frame and between scans
METADATA = frozenset({*range(0xE0, 0xF0), COM})  # dropped
# Component ids libjpeg reads as RGB (not YCbCr) when no JFIF marker says YCbCr: with the
# JFIF APP0 dropped, such a file would decode to other colours.
RGB_IDS = b"RGB"
# The longest upload kept as sent (metadata stripped): the shopper page downscales to
# 1600 px; a 12 MP camera original (4032 px, 3-5 MB) is stored re-encoded at the size it
# was graded at (1/4: about 1000 px).
LOSSLESS_MAX_LONG_SIDE = 2048
# In entropy-coded data a 0xFF is followed by 0x00 (a stuffed 0xFF) or a restart marker
# (D0..D7); anything else starts a marker (or a run of 0xFF fill bytes before one). A
# pattern opening with a literal byte is searched at memchr speed: ~0.05 ms for 150 KB.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def clean_upload(photo: DecodedPhoto, upload: bytes | None) -> bytes | None:
    """The upload without its metadata when that is exact, else None (the caller
    re-encodes ``photo.rgb``).

    Exact only when the stored pixels are the upload's own: a JPEG (the rewrite keeps its
    entropy-coded data) with no orientation applied (the file's pixels would be stored
    sideways; the EXIF that turned them goes). Decoded at full size, the stored file
    decodes to ``photo.rgb``; DCT-downscaled while grading (the shopper page's 1600 px
    photo is graded at 800 px), it decodes the same way to the same pixels, because a
    downscaled decode reads only the kept data, and reviewers get the full photo. Over
    ``LOSSLESS_MAX_LONG_SIDE`` (a 12 MP camera original) the file would be several MB, so
    the graded, smaller pixels are re-encoded instead. ICC profiles are not applied by
    ``vision.decode``, so dropping one changes nothing.
    """
    if upload is None or not _is_upright_jpeg_of_moderate_size(photo):
        return None
    if len(upload) != photo.byte_size:  # not the bytes this photo was decoded from
        return None
    return strip_metadata(upload)


def _is_upright_jpeg_of_moderate_size(photo: DecodedPhoto) -> bool:
    """Whether the upload is a JPEG whose stored pixels are upright and, kept whole, not
    much larger than what the shopper page sends."""
    return (
        photo.format == "jpeg"
        and photo.orientation == 1
        and max(photo.original_width, photo.original_height) <= LOSSLESS_MAX_LONG_SIDE
    )


def strip_metadata(data: bytes) -> bytes | None:
    """``data`` (a JPEG) with only the segments decoding reads, or None when it is not a
    JPEG this rewrite is exact for (malformed, truncated, unusual coding, CMYK, grey,
    Adobe colour transform, RGB component ids). Never raises."""
    if data[:2] != b"\xff\xd8":
        return None
    out: list[bytes] = [b"\xff\xd8"]
    pos = _copy_header(data, 2, out)
    if pos is None:
        return None
    end = _copy_scans(data, pos, out)
    if end is None:
        return None
    return b"".join(out)


def _next_marker(data: bytes, pos: int) -> tuple[int, int] | None:
    """(marker, position after it) of the marker at ``pos``, skipping 0xFF fill bytes;
    None when ``pos`` holds anything else (libjpeg would skip it with a warning, which
    we do not try to match)."""
    if pos >= len(data) or data[pos] != 0xFF:
        return None
    while pos < len(data) and data[pos] == 0xFF:
        pos += 1
    if pos >= len(data):
        return None
    return data[pos], pos + 1


def _segment_end(data: bytes, pos: int) -> int | None:
    """End of the segment whose length field starts at ``pos`` (the field counts itself),
    or None when the field is truncated, too small or runs past the data."""
    if pos + 2 > len(data):
        return None
    length = int.from_bytes(data[pos : pos + 2], "big")
    if length < 2 or pos + length > len(data):
        return None
    return pos + length


def _copy_header(data: bytes, pos: int, out: list[bytes]) -> int | None:
    """Copy the table and frame segments up to the first SOS (which is copied too) and
    return where its entropy-coded data starts; metadata segments are skipped."""
    seen_frame = False
    while True:
        found = _next_marker(data, pos)
        if found is None:
            return None
        marker, body = found
        end = _segment_end(data, body)
        if end is None:
            return None
        segment = data[body - 2 : end]
        if marker in FRAMES:
            if seen_frame or not _frame_is_exact(segment):
                return None
            seen_frame = True
        elif marker == SOS:
            if not seen_frame or not _scan_header_ok(segment):
                return None
            out.append(segment)
            return end
        elif marker == APP14:
            return None
        elif marker in METADATA:
            pos = end
            continue
        elif marker not in TABLES:  # DAC, DNL, DHP, EXP, JPGn, a second SOI, RSTn, ...
            return None
        out.append(segment)
        pos = end


def _frame_is_exact(segment: bytes) -> bool:
    """An 8-bit, three-component frame whose colour space does not depend on a dropped
    marker: marker(2) length(2) precision(1) height(2) width(2) count(1) then 3 bytes per
    component (id, sampling, table)."""
    if len(segment) != 10 + 3 * 3 or segment[4] != 8 or segment[9] != 3:
        return False
    height = int.from_bytes(segment[5:7], "big")
    width = int.from_bytes(segment[7:9], "big")
    if height == 0 or width == 0:  # a height in a DNL segment after the scan
        return False
    return bytes(segment[10::3]) != RGB_IDS


def _scan_header_ok(segment: bytes) -> bool:
    """marker(2) length(2) count(1), 2 bytes per component, then 3 bytes of spectral and
    successive-approximation parameters."""
    return len(segment) >= 5 and 1 <= segment[4] <= 4 and len(segment) == 8 + 2 * segment[4]


def _copy_scans(data: bytes, pos: int, out: list[bytes]) -> int | None:
    """Copy every scan's entropy-coded data and the segments between scans up to EOI
    (included); returns the position after EOI, or None for a truncated or unexpected
    stream. Metadata segments between scans are dropped, as are the bytes after EOI."""
    while True:
        found = _end_of_scan(data, pos)
        if found is None:
            return None
        scan_end, marker, after = found
        out.append(data[pos:scan_end])
        pos = after
        if marker == EOI:
            out.append(b"\xff\xd9")
            return pos
        end = _segment_end(data, pos)
        if end is None:
            return None
        segment = data[pos - 2 : end]
        if marker == APP14:
            return None
        if marker in METADATA:
            pos = end
            continue
        if marker == SOS:
            if not _scan_header_ok(segment):
                return None
        elif marker not in TABLES:  # DNL, a second frame, ...
            return None
        out.append(segment)
        pos = end


def _end_of_scan(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(where the entropy-coded data from ``pos`` ends, the marker that ends it, the
    position after that marker), or None when there is none (truncated) or fill bytes
    precede a stuffed byte or a restart (legal for libjpeg, too odd to keep exact)."""
    match = _SCAN_END.search(data, pos)
    if match is None:
        return None
    start, marker_at = match.start(), match.start() + 1
    while marker_at < len(data) and data[marker_at] == 0xFF:  # fill bytes
        marker_at += 1
    if marker_at >= len(data):
        return None
    marker = data[marker_at]
    if marker == 0x00 or 0xD0 <= marker <= 0xD7:
        return None
    return start, marker, marker_at + 1
