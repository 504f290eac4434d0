"""Item-versus-background segmentation for the quality gate, and what it says about framing.

Split out of ``vision/quality.py`` so the gate's checks and thresholds stay readable. Every
function works on a working copy with a fixed long side (the mask at 128 px), so the
answer does not depend on the scale the photo was decoded at.

Framing questions answered here:

- which pixels are the item (the dominant colour mode of the border ring is the
  background, anything far from it is the item);
- which of them are skin: a hand holding the item reaches the frame edge on purpose, so
  skin is never counted as "item cut off by the edge";
- how much of the frame border the item covers, read on a ring a few pixels deep rather
  than on the single outermost row (one row flips with a pixel of JPEG noise, which is
  how a full decode and a DCT-downscaled decode of one photo used to disagree);
- whether the photo is a close-up: the item surface reaches all four edges and fills
  most of the frame, so there is no "whole item" to fit in (a shopper's close-up of a
  damaged spot), as opposed to an item that should be whole but runs off one or two
  edges (cut off).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MASK_LONG_SIDE = 128
# Border depth (pixels at 128 px) over which border contact is averaged.
_CONTACT_RING = 3
# A side counts as "reached" by the item when this share of it is item.
_SIDE_REACHED = 0.3
# Close-up: every side reached and at least this share of the frame is item.
_CLOSE_UP_COVERAGE = 0.45
# Skin covering more than this share of the foreground is the item, not a holding hand.
_HAND_MAX_SHARE = 0.5


def working_copy(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """``rgb`` resized so its long side is exactly ``long_side`` (area filter to shrink)."""
    h, w = rgb.shape[:2]
    if max(h, w) == long_side:
        return rgb
    s = long_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, size, interpolation=interp)


def _kmeans(x: np.ndarray, k: int, iters: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic k-means (init at quantiles of the first principal axis)."""
    mu = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
    order = np.argsort((x - mu) @ vt[0])
    centres = x[order[((np.arange(k) + 0.5) * len(x) / k).astype(np.int64)]].copy()
    labels = np.zeros(len(x), np.int64)
    for _ in range(iters):
        labels = ((x[:, None, :] - centres[None]) ** 2).sum(-1).argmin(axis=1)
        counts = np.bincount(labels, minlength=k)
        sums = np.stack(
            [np.bincount(labels, weights=x[:, c], minlength=k) for c in range(x.shape[1])], axis=1
        )
        filled = counts > 0  # an empty cluster keeps its centre
        centres[filled] = sums[filled] / counts[filled, None]
    return centres, labels


def item_mask(
    rgb: np.ndarray,
    *,
    ring: int = 3,
    clusters: int = 4,
    merge: float = 12.0,
    min_distance: float = 9.0,
) -> np.ndarray:
    """Item (1) vs background (0), uint8 at 128 px long side.

    The background is the dominant colour mode of the border ring (k-means in Lab, similar
    clusters merged); pixels farther from it than its own spread are the item.

    Assumes one table/floor surface around the item; a second surface reaching the
    border (a wall behind the table) counts as item touching the border.
    """
    small = cv2.GaussianBlur(working_copy(rgb, MASK_LONG_SIDE), (0, 0), 1.2)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    lab *= np.array([0.8, 1.0, 1.0], np.float32)  # lighting varies more than colour
    h, w = lab.shape[:2]
    border = np.zeros((h, w), bool)
    border[:ring], border[-ring:], border[:, :ring], border[:, -ring:] = True, True, True, True
    samples = lab[border].astype(np.float64)
    centres, labels = _kmeans(samples, clusters)
    share = np.bincount(labels, minlength=clusters) / len(labels)
    # Merge clusters of similar colour (texture, shading), then take the largest group.
    group = list(range(clusters))
    for a in range(clusters):
        for b in range(a + 1, clusters):
            if np.linalg.norm(centres[a] - centres[b]) < merge:
                old, new = group[b], group[a]
                group = [new if g == old else g for g in group]
    totals = {g: sum(share[j] for j in range(clusters) if group[j] == g) for g in set(group)}
    best = max(totals, key=lambda g: totals[g])
    bg = [j for j in range(clusters) if group[j] == best and share[j] > 0]
    members = np.isin(labels, bg)
    spread = np.min(np.linalg.norm(samples[members, None, :] - centres[None, bg], axis=2), axis=1)
    threshold = max(min_distance, 1.5 * float(np.percentile(spread, 95)))
    dist = np.min(
        np.stack([np.linalg.norm(lab - centres[j].astype(np.float32), axis=2) for j in bg]), axis=0
    )
    fg = (dist > threshold).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    return _fill_holes(_drop_specks(fg, 0.003 * h * w))


def _drop_specks(fg: np.ndarray, min_area: float) -> np.ndarray:
    n, cc, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[cc].astype(np.uint8)


def _fill_holes(fg: np.ndarray) -> np.ndarray:
    n, cc = cv2.connectedComponents((1 - fg).astype(np.uint8), connectivity=4)
    outside = np.unique(np.concatenate([cc[0], cc[-1], cc[:, 0], cc[:, -1]]))
    holes = np.ones(n, bool)
    holes[outside] = False
    holes[0] = False
    out = fg.copy()
    out[holes[cc]] = 1
    return out


def skin_mask(rgb: np.ndarray) -> np.ndarray:
    """Skin-coloured pixels (1), uint8 at 128 px long side.

    The classic YCrCb skin box (Cr 135-175, Cb 80-125) with a luma floor, smoothed and
    cleaned of specks; it covers light to dark skin under ordinary indoor light. Used only
    to discount a holding hand at the frame edge, never to find the item.
    """
    small = cv2.GaussianBlur(working_copy(rgb, MASK_LONG_SIDE), (0, 0), 1.0)
    ycc = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    skin = ((cr >= 135) & (cr <= 175) & (cb >= 80) & (cb <= 125) & (y >= 45)).astype(np.uint8)
    opened = np.asarray(cv2.morphologyEx(skin, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)))
    return _drop_specks(opened, 0.003 * opened.size)


def border_fraction(mask: np.ndarray) -> float:
    """Share of the frame's outermost pixels that belong to the mask."""
    return float(np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]]).mean())


def side_contact(mask: np.ndarray, depth: int = _CONTACT_RING) -> tuple[float, ...]:
    """Per side (top, bottom, left, right): share of that side covered by the mask,
    averaged over a ring ``depth`` pixels deep (robust to one row of JPEG noise)."""
    m = mask.astype(np.float32)
    d = max(1, min(depth, m.shape[0] // 4, m.shape[1] // 4))
    return (
        float(m[:d].mean()),
        float(m[-d:].mean()),
        float(m[:, :d].mean()),
        float(m[:, -d:].mean()),
    )


@dataclass(frozen=True)
class Framing:
    """How the item sits in the frame."""

    coverage: float  # item share of the frame (a holding hand included)
    edge_cut: float  # share of the frame border covered by the item (hand excluded)
    close_up: bool  # the item surface reaches every edge and fills the frame


def framing(mask: np.ndarray, skin: np.ndarray) -> Framing:
    """Coverage, border contact and the close-up decision from the item and skin masks.

    A holding hand (skin touching the border) is part of a normal shopper photo: it is
    removed before border contact is measured. A close-up (item on all four sides and
    filling the frame) has no outline to fit in, so the cut-off check does not apply.
    """
    if skin.shape != mask.shape:
        skin = cv2.resize(skin, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST)
    # The hand's rim (shadow, blur) is not skin-coloured: widen the skin region a little.
    hand = cv2.dilate(skin, np.ones((5, 5), np.uint8))
    # A hand is a part of the foreground, not most of it: a cardboard box is skin-coloured
    # in YCrCb, and a cut-off box must still read as cut off.
    if (mask & hand).sum() > _HAND_MAX_SHARE * max(int(mask.sum()), 1):
        hand = np.zeros_like(hand)
    item_only = mask & (1 - hand)
    sides = side_contact(mask)
    coverage = float(mask.mean())
    close_up = min(sides) >= _SIDE_REACHED and coverage >= _CLOSE_UP_COVERAGE
    d = max(1, min(_CONTACT_RING, mask.shape[0] // 4, mask.shape[1] // 4))
    ring = np.ones_like(mask, dtype=bool)
    ring[d:-d, d:-d] = False
    edge_cut = float(item_only[ring].mean())
    return Framing(coverage=coverage, edge_cut=edge_cut, close_up=bool(close_up))
