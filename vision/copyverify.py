"""Copy detection, stage 2: is a candidate found by the search (``vision/copydetect.py``)
really the photo the query was made from?

First the local features: ratio-tested Hamming matches, then a RANSAC fit of a
similarity transform (rotation + uniform scale + shift: what a crop, rotation, border or
screenshot does); fewer than ``MIN_INLIERS`` agreeing matches: no copy. Then the whole
overlap, densely: the query is moved by that transform onto the candidate's stored
thumbnail, its grey levels fitted to the thumbnail's (undoing brightness and contrast),
and the score is the share of the overlap's blocks that agree. Keypoints alone cannot
tell a copy from another photo of the same item: printed artwork, a logo or a rigid
product seen from a similar angle match on one transform too. But only a copy also
agrees on the rest of the frame: the grain of the table, the wall, the light. Blocks
smooth in both photos say little and are left out; so are the query's padding (a border,
a rotation's fill, a screenshot's frame: ``vision/copyframe.py``) with a band around it,
and its clipped highlights and shadows.
"""

from __future__ import annotations

import cv2
import numpy as np

from vision.copydetect import THUMB, CopyDescriptor, LocalFeatures
from vision.copyframe import padding_mask

RATIO = 0.85  # Lowe's ratio test on Hamming distances
RANSAC_PX = 5.0  # inlier reprojection error, in SIDE-px
MIN_INLIERS = 12  # fewer: no transform, score 0
MIN_PIXELS = 300  # thumbnail px the dense check needs (of 96 x 96)
BLOCK = 8  # thumbnail px per block
MIN_BLOCKS = 6  # blocks the dense check needs
FLAT = 4.0  # overlap grey standard deviation under which there is nothing to compare
SOFT = 1.0  # thumbnail px of blur on both sides: a pixel of misfit is no disagreement
TEXTURE = 6.0  # grey sd in a block (either photo's) from which it is textured
MIN_CORRELATION = 0.5  # Pearson correlation of a block's grey levels, at least
TOLERANCE = 0.2  # a block agrees when its median residual <= this share of the contrast
CLIPPED = 3  # grey levels from black or white at which a query pixel is clipped
CLEAR = 0.95  # a whole-query score from which its content box is not verified too
PAD_BAND = 2 * THUMB + 1  # SIDE-px around the padding left out (two thumbnail px)

_MATCHER = cv2.BFMatcher(cv2.NORM_HAMMING)


def transform(a: LocalFeatures, b: LocalFeatures) -> tuple[np.ndarray | None, int]:
    """The similarity transform (2x3) from ``a``'s frame to ``b``'s that most ratio-tested
    matches agree on, and how many do (None, n when there is none)."""
    if len(a) < 3 or len(b) < 3:
        return None, 0
    pairs = _MATCHER.knnMatch(a.descriptors, b.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < 4:
        return None, 0
    src = a.points[[m.queryIdx for m in good]]
    dst = b.points[[m.trainIdx for m in good]]
    model, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=1000
    )
    if model is None or inliers is None:
        return None, 0
    scale = float(np.hypot(model[0, 0], model[1, 0]))
    if not 0.25 <= scale <= 4.0:  # no edit in scope shrinks or grows a photo that much
        return None, 0
    return model, int(inliers.sum())


def _content(query: np.ndarray, padding: np.ndarray | None) -> np.ndarray:
    """255 where the query shows its photo: not padding (nor within ``PAD_BAND`` of it),
    and not clipped to black or white (nor next to it): a brightness or contrast edit
    burns highlights out, and a clipped pixel no longer says what the original held."""
    pad = padding_mask(query) if padding is None else padding
    band = cv2.dilate(pad.astype(np.uint8), np.ones((PAD_BAND, PAD_BAND), np.uint8))
    clipped = ((query <= CLIPPED) | (query >= 255 - CLIPPED)).astype(np.uint8)
    near_clipped = cv2.dilate(clipped, np.ones((THUMB + 1, THUMB + 1), np.uint8))
    return np.where((band > 0) | (near_clipped > 0), 0, 255).astype(np.uint8)


def agreement(
    query: np.ndarray,
    model: np.ndarray,
    stored_thumb: np.ndarray,
    padding: np.ndarray | None = None,
) -> float:
    """Share of the overlap's blocks where ``query`` (SIDE-px grey), moved by ``model``
    into the stored photo's frame, looks like the stored thumbnail.

    Brightness and contrast edits are undone first by one linear fit of the grey levels
    over the whole overlap; a block agrees when its residual is small against the
    overlap's contrast.
    """
    to_thumb = model / THUMB  # SIDE-px of the stored photo -> its thumbnail px
    to_thumb[:, 2] -= (THUMB - 1) / (2 * THUMB)  # pixel centres: thumb px u is at 4u + 1.5
    scale = float(np.hypot(to_thumb[0, 0], to_thumb[1, 0]))
    src = query
    if scale < 0.7:  # shrinking: low-pass first, so the warp does not alias
        src = cv2.GaussianBlur(query, (0, 0), 0.45 / scale)
    th, tw = stored_thumb.shape
    warped = cv2.warpAffine(src, to_thumb, (tw, th), flags=cv2.INTER_LINEAR).astype(np.float32)
    valid = cv2.warpAffine(_content(query, padding), to_thumb, (tw, th)) == 255
    ref = cv2.GaussianBlur(stored_thumb.astype(np.float32), (0, 0), SOFT)
    warped = np.asarray(cv2.GaussianBlur(warped, (0, 0), SOFT), np.float32)
    mask = cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if int(mask.sum()) < MIN_PIXELS:
        return 0.0
    q, r = warped[mask], ref[mask]
    spread = float(r.std())
    if spread < FLAT or float(q.std()) < FLAT:
        return 0.0
    gain, offset = _grey_fit(q, r)
    fitted = warped * gain + offset
    return _agreeing_blocks(fitted, ref, mask, TOLERANCE * spread)


def _grey_fit(q: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """Grey levels of the query -> the stored photo's (brightness and contrast edits): a
    robust start from the 10th and 90th percentiles, then least squares on the best
    fitting 60 % (rotation fill, borders and clipped highlights do not pull it)."""
    (q10, q90), (r10, r90) = np.percentile(q, [10, 90]), np.percentile(r, [10, 90])
    gain = float((r90 - r10) / max(q90 - q10, 1e-3))
    offset = float(np.median(r) - gain * np.median(q))
    for _ in range(2):
        misfit = np.abs(q * gain + offset - r)
        keep = misfit <= np.percentile(misfit, 60)
        if int(keep.sum()) <= 16 or float(q[keep].std()) <= 0:
            break
        g, o = np.polyfit(q[keep], r[keep], 1)
        gain, offset = float(g), float(o)
    return gain, offset


def _blocks(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(blocks, BLOCK * BLOCK) pixels of each whole block, NaN outside ``mask``."""
    th, tw = image.shape
    by, bx = th // BLOCK, tw // BLOCK
    cells = np.where(mask, image, np.nan)[: by * BLOCK, : bx * BLOCK]
    return cells.reshape(by, BLOCK, bx, BLOCK).transpose(0, 2, 1, 3).reshape(by * bx, -1)


def _agreeing_blocks(
    fitted: np.ndarray, ref: np.ndarray, mask: np.ndarray, tolerance: float
) -> float:
    """Share of the textured blocks (with at least half their pixels in ``mask``) that
    agree; of all of them when too few are textured.

    A block agrees when the median residual of its pixels is small (the thin lines where
    the query's content ends, a crop's rotated edge against its fill, are a minority)
    and its grey levels follow each other (Pearson >= ``MIN_CORRELATION``). Blocks
    smooth in both photos are left out: two photos of one item on similar plain
    backgrounds agree there as well as a copy does; only the layout of texture (the
    grain of a table, a pattern, noise) tells them apart.
    """
    q, r = _blocks(fitted, mask), _blocks(ref, mask)
    used = np.sum(~np.isnan(q), axis=1) >= BLOCK * BLOCK // 2
    if int(used.sum()) < MIN_BLOCKS:
        return 0.0
    q, r = q[used], r[used]
    close = np.nanmedian(np.abs(q - r), axis=1) <= tolerance
    rc = r - np.nanmean(r, axis=1, keepdims=True)
    qc = q - np.nanmean(q, axis=1, keepdims=True)
    r_sd = np.sqrt(np.nanmean(rc * rc, axis=1))
    q_sd = np.sqrt(np.nanmean(qc * qc, axis=1))
    corr = np.nanmean(rc * qc, axis=1) / np.maximum(r_sd * q_sd, 1e-6)
    textured = (r_sd >= TEXTURE) | (q_sd >= TEXTURE)
    agree = close & (corr >= MIN_CORRELATION)
    if int(textured.sum()) >= MIN_BLOCKS:  # smooth on both sides: weak evidence, left out
        return float(np.mean(agree[textured]))
    return float(np.mean(close))


def verify(a: LocalFeatures, b: LocalFeatures) -> float:
    """How surely ``a`` (a query, with its grey image) is a copy of ``b`` (stored): the
    dense agreement of the overlap under the transform the keypoints agree on, in [0, 1];
    0 when fewer than ``MIN_INLIERS`` matches agree on one."""
    model, inliers = transform(a, b)
    if model is None or inliers < MIN_INLIERS or a.grey is None:
        return 0.0
    return round(agreement(a.grey, model, b.thumb, a.padding), 4)


def verify_query(query: CopyDescriptor, stored: LocalFeatures) -> float:
    """``verify`` of the whole query and, unless that is already a clear copy
    (``CLEAR``), of its content box (``CopyDescriptor.parts``): the better score."""
    best = verify(query.local, stored)
    for part in query.parts:
        if best >= CLEAR:
            break
        best = max(best, verify(part.local, stored))
    return best
