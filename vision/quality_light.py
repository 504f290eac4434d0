"""Exposure and glare measures of the quality gate: what clipped to white, and where.

Split out of ``vision/quality.py`` (thresholds and checks) and ``vision/quality_mask.py``
(item mask, framing). Every function works on the gate's 512 px working copy, so the
answer does not depend on the scale the photo was decoded at.

Three things clip to white in a shopper's photo, and the gate must tell them apart:

- a white backdrop (a studio sweep, a white table or wall) around a whole item: it
  carries no detail of the item, so it is neither overexposure nor glare;
- a burnt-out photo: the exposure washed the item itself (and usually its surroundings)
  to white;
- glare: a compact specular highlight (flash, lamp, window) on an otherwise normally
  exposed item, brighter than everything around it.

A backdrop only exists when the item is framed whole: a close-up, a street scene or an
item running off the frame has no backdrop, and every clipped pixel there is detail lost
(a burnt white car body looks exactly like a white sweep to the item mask, which calls
the dominant border colour background).
"""

from __future__ import annotations

import cv2
import numpy as np

_CLIP_CHANNEL = 250
_CLIP_LUMA = 200
# A highlight's surroundings (a ring 0.8 of its radius wide) must be darker than this
# (median luma) for it to be glare rather than part of a white surface.
_GLARE_RING_LUMA = 225.0
# Highlights are colourless: the flash or the sky reflected, not the item's colour.
_GLARE_MAX_SATURATION = 40


def brightest_channel(work: np.ndarray) -> np.ndarray:
    """max(R, G, B) per pixel (HSV value). One split into contiguous planes: OpenCV
    would otherwise copy each strided channel view before comparing."""
    r, g, b = cv2.split(work)
    return cv2.max(cv2.max(r, g), b)


def clipped_where(brightest: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """Burnt pixels: bright (luma >= 200) with a channel at >= 250 (white or a washed-out
    pastel, detail lost); a saturated red mug is not counted. From the brightest channel,
    which the gate also reads for the brightness check, so it is made once per photo."""
    return (brightest >= _CLIP_CHANNEL) & (gray >= _CLIP_LUMA)


def saturation_where(work: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """HSV saturation of ``work`` inside the bounding box of ``clip`` (255 outside).
    :func:`glare_fraction` reads saturation only on clipped pixels, and the conversion
    is per pixel, so there it equals the whole frame's; most photos clip in a small
    patch, if at all, and the box costs a fraction of the full conversion."""
    x, y, w, h = cv2.boundingRect(clip.view(np.uint8))
    sat = np.full(clip.shape, 255, np.uint8)
    if not w:
        return sat  # nothing clipped
    box = np.ascontiguousarray(work[y : y + h, x : x + w])
    sat[y : y + h, x : x + w] = cv2.cvtColor(box, cv2.COLOR_RGB2HSV)[..., 1]
    return sat


def clipped_fraction(clip: np.ndarray, item: np.ndarray, framed: bool) -> float:
    """Share of the photo that is burnt out.

    A whole item on its surroundings (``framed``: the item mask finds an item that stays
    clear of the frame edge) is judged on the item alone: the share of the item mask
    that clipped. A white sweep, table or wall around it carries no detail of the item,
    so a product shot on white passes, while a burnt-out item (its own surface washed to
    white) does not. A photo without such framing (a close-up, an item running off the
    frame, a street scene, or no item found at all) is judged whole: there every clipped
    pixel is detail lost, and a burnt white car body fools the item mask (it calls the
    dominant border colour background) exactly like a white sweep would."""
    if framed and item.any():
        return float((clip & item).sum() / item.sum())
    return float(clip.mean())


def glare_fraction(
    gray: np.ndarray, saturation: np.ndarray, clip: np.ndarray, backdrop: np.ndarray | None
) -> float:
    """The largest area a highlight hides, as a share of the frame.

    A highlight is a clipped, colourless blob that does not touch the frame edge (a white
    backdrop, a clipped sky or a white wall does), whose surroundings are clearly darker
    (the ring 0.8 of its radius wide has a median luma below ``_GLARE_RING_LUMA``): a
    white item evenly lit has no such ring. The area it hides is that of the largest disc
    inside it (from the distance transform): a reflection covers a patch of the item,
    while a thin white stripe, rim or print (a sneaker sole, a label's edge, a chrome
    trim) hides nothing one cannot see around, however long it is.

    ``backdrop`` (the item mask's background, given only for an item framed whole): a
    blob that lies on it and is mostly ringed by it is a bright patch of the white sweep
    or table (the light falls off toward the frame edges, leaving the middle of a white
    backdrop clipped and the edges not), never glare. Without framing (a close-up, a
    car filling the frame) the mask's "background" may be the item's own surface, so no
    blob is excused.
    """
    spots = (clip & (saturation < _GLARE_MAX_SATURATION)).astype(np.uint8)
    if not cv2.countNonZero(spots):  # most photos: no labelling of an empty image
        return 0.0
    n, cc, stats, _ = cv2.connectedComponentsWithStats(spots, connectivity=8)
    if n <= 1:
        return 0.0
    h, w = spots.shape
    depth = cv2.distanceTransform(
        cv2.copyMakeBorder(spots, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0), cv2.DIST_L2, 5
    )[1:-1, 1:-1]
    largest = 0.0
    for i in np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:8] + 1:
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area < 4 or x == 0 or y == 0 or x + bw == w or y + bh == h:
            continue
        pad = max(3, round(0.8 * np.sqrt(area / np.pi)))
        x0, y0, x1, y1 = (
            max(0, x - pad),
            max(0, y - pad),
            min(w, x + bw + pad),
            min(h, y + bh + pad),
        )
        blob = (cc[y0:y1, x0:x1] == i).astype(np.uint8)
        radius = float(depth[y0:y1, x0:x1][blob > 0].max())
        if np.pi * radius * radius <= largest * spots.size:
            continue  # cannot beat the largest so far
        ring = cv2.dilate(blob, np.ones((2 * pad + 1, 2 * pad + 1), np.uint8)) > blob
        if not ring.any() or float(np.median(gray[y0:y1, x0:x1][ring])) >= _GLARE_RING_LUMA:
            continue
        if backdrop is not None:
            back = backdrop[y0:y1, x0:x1]
            if back[blob > 0].mean() > 0.5 and back[ring].mean() > 0.5:
                continue
        largest = np.pi * radius * radius / spots.size
    return float(largest)


def percentiles_u8(gray: np.ndarray, qs: tuple[float, ...]) -> tuple[float, ...]:
    """Percentiles of a uint8 image from its histogram (a sort-free np.percentile).

    The histogram comes from ``cv2.calcHist`` (exact integer counts in float32 up to
    2^24 pixels, far above the 512 px working copy) rather than ``np.bincount``, which
    first widens every pixel to int64: ~0.1 ms instead of ~1-3 ms per call."""
    hist = cv2.calcHist([np.ascontiguousarray(gray)], [0], None, [256], [0, 256])
    cum = np.cumsum(hist.ravel().astype(np.int64))
    return tuple(float(np.searchsorted(cum, q / 100.0 * cum[-1])) for q in qs)
