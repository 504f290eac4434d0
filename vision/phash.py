"""64-bit DCT perceptual hash, for spotting a photo reused from another return.

The hash keeps only the coarse structure of the photo: grey, area-resized to 32 x 32,
2-D DCT, the 8 x 8 lowest frequencies without the DC term (the DC term is just the mean
brightness and carries no structure; dropping it leaves 63 coefficients plus a padding
bit), each bit = coefficient above the median. Re-encoding, resizing and mild colour
changes barely move those coefficients, so a re-uploaded photo lands within a few bits;
unrelated photos differ in about half of the bits.

Hashes are stored as 16-character hex strings, because signed 64-bit integer columns
make the top bit awkward.
"""

from __future__ import annotations

import cv2
import numpy as np

HASH_BITS = 64
_SIZE = 32
_LOW = 8


def phash(rgb: np.ndarray) -> int:
    """The 64-bit perceptual hash of an HxWx3 (or HxW) uint8 image, as an int >= 0."""
    if rgb.ndim not in (2, 3) or rgb.size == 0:
        raise ValueError(f"expected an HxWx3 or HxW image, got shape {rgb.shape}")
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    small = cv2.resize(grey.astype(np.float32), (_SIZE, _SIZE), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:_LOW, :_LOW].flatten()
    coeffs = low[1:]  # 63 AC coefficients; the DC term is plain brightness
    bits = coeffs > np.median(coeffs)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value << 1  # the 64th bit is always 0 (keeps the width at 64)


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes (0 = same structure, ~32 = unrelated)."""
    return (a ^ b).bit_count()


def phash_hex(h: int) -> str:
    """16 lowercase hex digits, for storage."""
    if not 0 <= h < 1 << HASH_BITS:
        raise ValueError(f"not a 64-bit hash: {h}")
    return f"{h:016x}"


def phash_from_hex(s: str) -> int:
    """Inverse of :func:`phash_hex`; raises ValueError on anything but 16 hex digits."""
    if len(s) != 16 or not all(c in "0123456789abcdefABCDEF" for c in s):
        raise ValueError(f"expected 16 hex digits, got {s!r}")
    return int(s, 16)
