"""What in a query photo is the photo, and what is frame added around it.

An edited copy often carries pixels that were never in the original: a border, the
fill a rotation leaves in the corners, a screenshot's app frame (status bar, title,
plain background). Those pixels are *padding*: large stretches of one flat colour.
Two things follow from finding them:

* the dense check (``vision/copyverify.py``) ignores the padding and a band around
  it, so the edge between a border and the photo is not taken for disagreement;
* the *content box*, the bounding box of what is not padding, is described on its own
  (``vision/copydetect.py``): in a screenshot the photo fills a third of the frame and
  text and buttons take most of the keypoints; cut out and resized, it looks like the
  original again to both the search and the verification.

A photo's own flat areas (a plain wall, a studio background) are found as padding too.
That costs little: flat pixels say nothing to the dense check anyway, and the content
box of such a photo is only searched as one more part of the query.
"""

from __future__ import annotations

import cv2
import numpy as np

PAD_FLAT = 0.75  # grey standard deviation (5 x 5 px) under which a pixel is flat
NEAR = 9  # px: padding within this of padding is nested in it
PAD_AREA = 0.01  # a flat stretch is padding from this share of the frame
KEEP = 0.2  # content: the components from this share of the largest one's area
BOX_MAX = 0.8  # a content box over this share of the frame is the whole frame
BOX_MIN = 0.08  # one under it is not a photo (a logo, a line of text)


def local_sd(grey: np.ndarray, size: int = 5) -> np.ndarray:
    """Standard deviation of the grey levels in a ``size`` x ``size`` window."""
    g = grey.astype(np.float32)
    mean = cv2.blur(g, (size, size))
    return np.sqrt(np.maximum(cv2.blur(g * g, (size, size)) - mean * mean, 0))


def padding_mask(grey: np.ndarray) -> np.ndarray:
    """(h, w) bool: flat stretches of at least ``PAD_AREA`` of the frame that reach its
    edge, or reach such a stretch within ``NEAR`` px (a rotation's fill inside a border).

    A photo's own flat areas in the middle of the frame (a plain box face) are not
    padding: left in, they help the dense check tell a copy from another photo.
    """
    flat = (local_sd(grey) < PAD_FLAT).astype(np.uint8)
    n, labels = _components(flat, 4)
    big = np.bincount(labels.ravel(), minlength=n) >= PAD_AREA * grey.size
    big[0] = False  # label 0: the pixels that are not flat
    edge = np.zeros(n, bool)
    for line in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        edge[line] = True  # a fancy assignment: repeats are harmless, no sort needed
    padding = big & edge
    if not padding.any():  # most photos: nothing flat and large reaches the edge
        return np.zeros(grey.shape, bool)
    for _ in range(2):  # nested padding: a border's inside, then what lies inside that
        near = cv2.dilate(padding[labels].astype(np.uint8), np.ones((NEAR, NEAR), np.uint8))
        grown = padding.copy()
        grown[labels[near > 0]] = True
        grown &= big
        if np.array_equal(grown, padding):
            break
        padding = grown
    return np.asarray(padding[labels], bool)


def _components(mask: np.ndarray, connectivity: int) -> tuple[int, np.ndarray]:
    """The number of labels and the label image of ``mask``'s connected components.

    Areas and boxes come from the labels in numpy: OpenCV's ``WithStats`` variant takes
    ~1 ms on a 384 px frame (its statistics pass costs twice the labelling), and every
    query photo needs two of them."""
    n, labels = cv2.connectedComponents(mask, connectivity=connectivity)
    return int(n), labels


def content_box(padding: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of what is not padding, in the mask's pixels; None when that is
    (nearly) the whole frame or too small to be a photo.

    Small components (a clock, a line of text, a button) are left out: only those with
    at least ``KEEP`` of the largest one's area count.
    """
    if not padding.any():
        return None  # one component, the whole frame: over BOX_MAX
    n, labels = _components((~padding).astype(np.uint8), 8)
    if n <= 1:
        return None
    areas = np.bincount(labels.ravel(), minlength=n)
    areas[0] = 0  # label 0: the padding
    kept = areas >= KEEP * areas.max()
    inside = kept[labels]  # the kept components' pixels; their bounding box is the box
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    x0, x1, y0, y1 = int(cols[0]), int(cols[-1]) + 1, int(rows[0]), int(rows[-1]) + 1
    share = (x1 - x0) * (y1 - y0) / padding.size
    if not BOX_MIN <= share <= BOX_MAX:
        return None
    return x0, y0, x1, y1
