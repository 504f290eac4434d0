"""OpenCV's ``INTER_AREA`` shrink of a uint8 image, pixel for pixel, on cheaper paths.

Both resizes of a photo that every upload pays for are area shrinks at a fractional
scale: the model's input (``vision/preprocess.py``) and the quality gate's 512 px working
copy (``vision/quality_mask.py``). There OpenCV's uint8 path is a scalar loop that
converts every source value to float32 before it weighs it; resizing a float32 copy
sums the same float32 terms in the same order, and rounding its result half to even
(``cvRound``, ``np.rint``) gives every pixel of the uint8 path (random sizes, scales and
contents: ``tests/test_area_shrink.py``). The copy is what costs: 5.5 MiB for an 800 x
600 photo, up to four at once per worker in the gate pool.

So when it can, :func:`area_shrink` converts and resizes the image in strips of rows:
a strip of ``p`` source rows that becomes exactly ``q`` output rows, where the vertical
scale is ``p / q``. That gives the same pixels as the whole image only when OpenCV's
tables for the strip are those of the whole image's rows, which holds when its scale is
a dyadic number (``q`` a power of two: 800 x 600 to 512 x 384 is 25 / 16): OpenCV
computes each output row's first source row and weights as ``row * scale`` in double,
exact for such a scale, so a strip starting at a multiple of ``p`` sees the same values.
Every scale to the gate's 512 px long side is dyadic on that side, and so is the short
side of the usual photo shapes (4:3, 3:2, 16:9). Other scales, and a period whose rows
alone would make a float copy over ``FLOAT_COPY_MAX`` bytes (an odd shape: 1023 rows to
512 is one period of 1023), take the whole float copy when it is at most that, else
OpenCV's uint8 path.
"""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np

# The whole-image float32 copy, at most (bytes): an 800 x 600 RGB photo's is 5.5 MiB.
FLOAT_COPY_MAX = 6 * 1024 * 1024
# A strip's float32 copy, about (bytes): at least one period of rows, however wide.
STRIP_BYTES = 1024 * 1024


def area_shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv2.resize(image, size, interpolation=cv2.INTER_AREA)``, pixel for pixel, for a
    uint8 ``image`` at least ``size`` (width, height) on both sides.

    An integer scale keeps OpenCV's uint8 path, its fast one; a dyadic vertical scale
    goes strip by strip (:func:`row_period`), anything else through one float32 copy
    or, over ``FLOAT_COPY_MAX``, OpenCV's uint8 path. 800 x 600 to 512 x 384: 2.8 ms on
    the uint8 path, 2.1 in strips; 1008 x 756 (a 12 MP photo's decode) to 224 x 168:
    the uint8 path before (its whole copy is 9 MiB), strips now."""
    h, w = image.shape[:2]
    integer = w % size[0] == 0 and h % size[1] == 0
    if image.dtype != np.uint8 or integer:
        return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    period = row_period(h, size[1])
    if period is not None and 4 * period[0] * image[0].size <= FLOAT_COPY_MAX:
        return _in_strips(image, size, period)
    if 4 * image.size > FLOAT_COPY_MAX:
        return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    out = cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return np.rint(out, out=out).astype(np.uint8)


def row_period(rows: int, out_rows: int) -> tuple[int, int] | None:
    """``(p, q)``: ``p`` source rows become exactly ``q`` output rows, and strips of
    them resize as the whole image would; None when the scale is not dyadic.

    OpenCV's scale is ``1 / (out_rows / rows)`` in double; it must be exactly
    ``rows / out_rows`` with a power-of-two denominator, so that every ``row * scale``
    (and its fractional part, the weights) is exact whatever row a strip starts at."""
    exact = Fraction(rows, out_rows)
    scale = 1.0 / (out_rows / rows)
    q = exact.denominator
    if Fraction(scale) != exact or q & (q - 1):
        return None
    return exact.numerator, q


def _in_strips(image: np.ndarray, size: tuple[int, int], period: tuple[int, int]) -> np.ndarray:
    """The float32 path, ``k`` periods of rows at a time (about ``STRIP_BYTES`` each)."""
    p, q = period
    row_bytes = 4 * image[0].size
    k = max(1, STRIP_BYTES // (p * row_bytes))
    out = np.empty((size[1], size[0], *image.shape[2:]), np.uint8)
    for start in range(0, image.shape[0], k * p):
        strip = image[start : start + k * p]
        done = cv2.resize(
            strip.astype(np.float32), (size[0], len(strip) // p * q), interpolation=cv2.INTER_AREA
        )
        first = start // p * q
        out[first : first + len(done)] = np.rint(done, out=done)
    return out
