"""Item-versus-background segmentation for the quality gate, and what it says about framing.

Split out of ``vision/quality.py`` so the gate's checks and thresholds stay readable. Every
function works on a working copy with a fixed long side (the mask at 128 px), so the
answer does not depend on the scale the photo was decoded at.

Framing questions answered here:

- which pixels are the item: the dominant colour mode of the border ring is the
  background (after removing the light falling across the table, which would otherwise
  split one table into a bright and a dark "colour"), anything far from it is the item;
- how far the item runs off the frame: the largest share of one side of the border it
  covers, read on a ring a few pixels deep rather than on the single outermost row (one
  row flips with a pixel of JPEG noise, which is how a full decode and a DCT-downscaled
  decode of one photo used to disagree);
- which border contact is a holding hand, not the item: a shopper holds the item up to
  the camera on purpose, so a narrow skin-coloured stretch, smaller than what it holds
  (or, on a skin-coloured item such as cardboard, a forearm of its own colour reaching
  in), never counts as "cut off";
- whether the photo is a close-up: the item surface reaches all four edges and fills
  most of the frame, so there is no "whole item" to fit in (a shopper's close-up of a
  damaged spot), as opposed to an item that should be whole but runs off one or two
  edges (cut off).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from vision import orderstats
from vision.area import area_shrink

MASK_LONG_SIDE = 128
# Border depth (pixels at 128 px) over which border contact is averaged.
_CONTACT_RING = 3
# A side counts as "reached" by the item when this share of it is item.
_SIDE_REACHED = 0.3
# Close-up: every side reached and at least this share of the frame is item.
_CLOSE_UP_COVERAGE = 0.45
# A stretch of the border covered by the item is a holding hand when at least this share
# of it is skin and it spans at most this share of the side (a wrist, not a cut-off box).
_HAND_MIN_SKIN = 0.6
_HAND_MAX_RUN = 0.35
# ... and when its skin region is at most this share of the foreground.
_HAND_MAX_SHARE = 0.5
# On a skin-coloured item: colour distance (Lab, L* halved) within which the hand is one
# region, and how many times its width a forearm reaches into the frame.
_HAND_COLOUR_DE = 8.0
_HAND_MIN_REACH = 1.5


def working_copy(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """``rgb`` resized so its long side is exactly ``long_side`` (OpenCV's area filter to
    shrink, through ``vision.area.area_shrink``: the same pixels, cheaper)."""
    h, w = rgb.shape[:2]
    if max(h, w) == long_side:
        return rgb
    s = long_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    if s < 1:
        return area_shrink(rgb, size)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)


def _kmeans(x: np.ndarray, k: int, iters: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic k-means (init at quantiles of the first principal axis). Stops at a
    fixed point: the same labels twice give the same centres, so nothing could change."""
    mu = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
    order = np.argsort((x - mu) @ vt[0])
    centres = x[order[((np.arange(k) + 0.5) * len(x) / k).astype(np.int64)]].copy()
    labels = np.zeros(len(x), np.int64)
    # x's columns as (1, n) rows: the (k, n) distances below run along n, not along k
    # (an inner loop k = 4 long costs numpy ~5x the same values computed along n)
    columns = [np.ascontiguousarray(x[:, c])[None, :] for c in range(x.shape[1])]
    previous: np.ndarray | None = None  # labels of the last assignment step
    for _ in range(iters):
        # ((x[:, None, :] - centres[None]) ** 2).sum(-1).T, from x's columns
        labels = _sum_of_squares(columns, list(centres.T[:, :, None])).argmin(axis=0)
        if previous is not None and np.array_equal(labels, previous):
            break  # centres were already computed from these very labels
        previous = labels
        counts = np.bincount(labels, minlength=k)
        sums = np.stack([np.bincount(labels, weights=col[0], minlength=k) for col in columns], 1)
        filled = counts > 0  # an empty cluster keeps its centre
        centres[filled] = sums[filled] / counts[filled, None]
    return centres, labels


def _sum_of_squares(planes: list[np.ndarray], centre: list[np.ndarray]) -> np.ndarray:
    """``sum_c (planes[c] - centre[c]) ** 2``, summed left to right: bit for bit numpy's
    ``((x - centre) ** 2).sum(-1)`` over a short last axis, and the sum of squares inside
    ``np.linalg.norm(..., axis=-1)`` (both add ``(d0 + d1) + d2``), without the
    (..., channels) temporary and a reduction along an axis three long (~5x the time)."""
    total = (planes[0] - centre[0]) ** 2
    for plane, c in zip(planes[1:], centre[1:], strict=True):
        total += (plane - c) ** 2
    return total


def item_mask(
    rgb: np.ndarray,
    *,
    ring: int = 3,
    clusters: int = 4,
    merge: float = 12.0,
    min_distance: float = 9.0,
) -> np.ndarray:
    """Item (1) vs background (0), uint8 at 128 px long side.

    The background is the dominant colour mode of the border ring (k-means in Lab after
    removing the light falling across the table, similar clusters merged); pixels
    farther from it than its own spread are the item.

    Assumes one table/floor surface around the item; a second surface reaching the
    border (a wall behind the table) counts as item touching the border.
    """
    small = cv2.GaussianBlur(working_copy(rgb, MASK_LONG_SIDE), (0, 0), 1.2)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    h, w = lab.shape[:2]
    border, rows = _ring(h, w, ring)
    lab[..., 0] -= _lighting_plane(lab[..., 0], border, rows)
    lab *= np.array([0.8, 1.0, 1.0], np.float32)  # lighting varies more than colour
    samples = lab[border].astype(np.float64)
    centres, labels = _kmeans(samples, clusters)
    bg = _background_clusters(centres, labels, merge)
    members = np.isin(labels, bg)
    ring_bg = [samples[members, c][None, :] for c in range(3)]  # norm(samples - centres[bg])
    spread = np.sqrt(_sum_of_squares(ring_bg, list(centres[bg].T[:, :, None]))).min(axis=0)
    threshold = max(min_distance, 1.5 * float(orderstats.percentiles(spread, (95,))[0]))
    planes = list(cv2.split(lab))  # min over bg of norm(lab - centres[j], axis=2), float32
    dist = functools.reduce(
        np.minimum,
        (np.sqrt(_sum_of_squares(planes, list(centres[j].astype(np.float32)))) for j in bg),
    )
    fg = (dist > threshold).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    return _fill_holes(_drop_specks(fg, 0.003 * h * w))


def _lighting_plane(lightness: np.ndarray, border: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The light falling across the table: a plane in L* fitted on the border ring,
    zero at the ring's mean. Removing it lets a table lit from one side read as one
    surface instead of a bright and a dark colour, one of them "item" along two sides.

    Fitted robustly (refitted without the ring's outliers, such as an item crossing it),
    and weighted by how well a plane explains the ring: a gradient is removed whole
    (R^2 >= 0.9), while the step between two faces of a box filling the frame, which a
    plane explains poorly (R^2 <= 0.6), is left alone; in between the weight grows
    linearly, so a slightly different decode of the same photo moves it only slightly.
    Only a plane: anything curved, fitted on the ring alone, would be extrapolated into
    the middle of the frame, where the item is.
    """
    design = _plane_design(*lightness.shape)
    a, b = rows, lightness[border]  # rows: design[border.ravel()], cached by _ring
    keep = np.ones(len(b), bool)
    coef = np.zeros(3, np.float32)
    for _ in range(3):
        coef = np.linalg.lstsq(a[keep], b[keep], rcond=None)[0]
        resid = b - a @ coef
        centre = orderstats.median(resid[keep])  # np.median's value, taken once
        mad = float(orderstats.median(np.abs(resid[keep] - centre))) + 1e-3
        keep = np.abs(resid - centre) <= 2.5 * 1.4826 * mad
    explained = 1.0 - float(resid[keep].var()) / max(float(b[keep].var()), 1e-6)
    weight = float(np.clip((explained - 0.6) / 0.3, 0.0, 1.0))
    plane = (design[:, 1:] @ coef[1:]).reshape(lightness.shape)
    return weight * (plane - float(plane[border].mean()))


@functools.lru_cache(maxsize=8)
def _plane_design(h: int, w: int) -> np.ndarray:
    """[1, x, y] per pixel (x, y centred, in frame units): the design matrix of the
    lighting plane. It depends on the shape alone, and every photo of one aspect ratio
    has the same 128 px shape, so it is built once (read-only) instead of per photo."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    design = np.stack([np.ones(h * w, np.float32), xx.ravel() / w - 0.5, yy.ravel() / h - 0.5], 1)
    design.flags.writeable = False
    return design


@functools.lru_cache(maxsize=8)
def _ring(h: int, w: int, ring: int) -> tuple[np.ndarray, np.ndarray]:
    """The border ring ``ring`` pixels deep (bool mask) and the lighting plane's design
    rows on it: shape-only, so built once per shape (read-only) like the design."""
    border = np.zeros((h, w), bool)
    border[:ring], border[-ring:], border[:, :ring], border[:, -ring:] = True, True, True, True
    rows = _plane_design(h, w)[border.ravel()]
    border.flags.writeable = rows.flags.writeable = False
    return border, rows


def _background_clusters(centres: np.ndarray, labels: np.ndarray, merge: float) -> list[int]:
    """Which k-means clusters of the border ring are the surface the item lies on:
    clusters closer than ``merge`` are chained into one group (shading, texture, grout),
    and the group with the largest share of the ring is the background."""
    k = len(centres)
    group = list(range(k))
    for a in range(k):
        for b in range(a + 1, k):
            if np.linalg.norm(centres[a] - centres[b]) < merge:
                old, new = group[b], group[a]
                group = [new if g == old else g for g in group]
    share = np.bincount(labels, minlength=k) / len(labels)
    totals = {g: sum(share[j] for j in range(k) if group[j] == g) for g in set(group)}
    best = max(totals, key=lambda g: totals[g])
    return [j for j in range(k) if group[j] == best and share[j] > 0]


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


def skin_mask(small: np.ndarray) -> np.ndarray:
    """Skin-coloured pixels (1), uint8, of ``small``: the 128 px copy, already blurred
    (sigma 1; ``_Hands`` blurs it once for this and for the hand's colour).

    The classic YCrCb skin box (Cr 135-175, Cb 80-125) with a luma floor, smoothed and
    cleaned of specks; it covers light to dark skin under ordinary indoor light. Used only
    to discount a holding hand at the frame edge, never to find the item.
    """
    ycc = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    skin = ((cr >= 135) & (cr <= 175) & (cb >= 80) & (cb <= 125) & (y >= 45)).astype(np.uint8)
    opened = np.asarray(cv2.morphologyEx(skin, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)))
    return _drop_specks(opened, 0.003 * opened.size)


def side_contact(mask: np.ndarray, depth: int = _CONTACT_RING) -> tuple[float, ...]:
    """Per side (top, bottom, left, right): share of that side covered by the mask,
    averaged over a ring ``depth`` pixels deep (robust to one row of JPEG noise)."""
    return tuple(float(band.mean()) for band in _bands(mask.astype(np.float32), depth))


def _bands(a: np.ndarray, depth: int) -> tuple[np.ndarray, ...]:
    """The four border bands of ``a`` (top, bottom, left, right), each ``depth`` deep, as
    (depth, side length, ...) arrays whose first row is the outermost one."""
    d = max(1, min(depth, a.shape[0] // 4, a.shape[1] // 4))
    return a[:d], a[-d:][::-1], np.swapaxes(a[:, :d], 0, 1), np.swapaxes(a[:, -d:], 0, 1)[::-1]


def _runs(profile: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], profile.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _reach(shape: tuple[int, ...], side: int) -> np.ndarray:
    """Each pixel's distance from the given side of the frame (top, bottom, left, right)."""
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    return (yy, h - 1 - yy, xx, w - 1 - xx)[side]


class _Hands:
    """Tells a holding hand from the item where the foreground crosses the frame edge."""

    def __init__(self, mask: np.ndarray, rgb: np.ndarray) -> None:
        self.fg = mask > 0
        self.limit = _HAND_MAX_SHARE * max(int(self.fg.sum()), 1)
        small = cv2.GaussianBlur(working_copy(rgb, MASK_LONG_SIDE), (0, 0), 1.0)
        skin = skin_mask(small)
        n, self.skin_parts = cv2.connectedComponents(
            (self.fg & (skin > 0)).astype(np.uint8), connectivity=8
        )
        self.skin_areas = np.bincount(self.skin_parts.ravel(), minlength=n)
        lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
        self.lab = lab * np.array([0.5, 1.0, 1.0], np.float32)  # shading along the arm

    def is_hand(self, side: int, start: int, end: int, length: int) -> bool:
        """Whether the covered stretch [start, end) of one side is a hand (see edge_cut)."""
        if end - start > _HAND_MAX_RUN * length:
            return False
        item = _bands(self.fg, _CONTACT_RING)[side][:, start:end]
        parts = _bands(self.skin_parts, _CONTACT_RING)[side][:, start:end][item]
        if not parts.size or (parts > 0).mean() < _HAND_MIN_SKIN:
            return False
        if self.skin_areas[np.unique(parts[parts > 0])].sum() <= self.limit:
            return True  # a skin region smaller than what it holds
        # A skin-coloured item (cardboard, tan leather): the hand is the region of the
        # stretch's own colour, a minority of the foreground reaching in (a forearm)
        # further than it is wide.
        colour = np.median(_bands(self.lab, _CONTACT_RING)[side][:, start:end][item], axis=0)
        same = self.fg & (np.linalg.norm(self.lab - colour, axis=2) < _HAND_COLOUR_DE)
        _, parts_same = cv2.connectedComponents(same.astype(np.uint8), connectivity=8)
        touching = _bands(parts_same, _CONTACT_RING)[side][:, start:end][item]
        region = np.isin(parts_same, touching[touching > 0])
        if not region.any() or region.sum() > self.limit:
            return False
        reach = int(_reach(region.shape, side)[region].max())
        return reach >= _HAND_MIN_REACH * (end - start)


def edge_cut(mask: np.ndarray, rgb: np.ndarray) -> float:
    """How far the item runs off the frame: the largest share of one side of the border
    that the item covers (0: the item is whole in the frame).

    Along each side, a position is covered when most of the ring's depth there is item.
    A covered stretch is a hand or forearm holding the item (a normal shopper photo, not
    counted) when it is mostly skin, spans at most ``_HAND_MAX_RUN`` of the side (a
    wrist, narrower than an item's cross-section) and is smaller than what it holds: its
    skin region is at most ``_HAND_MAX_SHARE`` of the foreground. A skin-coloured item
    (cardboard, a tan shoe, a brown mug; all inside the YCrCb skin box) merges with the
    hand in that region; then the hand is the region of the stretch's own colour, and it
    must reach into the frame ``_HAND_MIN_REACH`` times further than it is wide (a forearm,
    not the rim of a cut-off item). The largest side rather than the whole ring: an item
    cut off at one side is as cut off in a frame whose other sides are clear.
    """
    hands: _Hands | None = None
    worst = 0.0
    for side, band in enumerate(_bands(mask, _CONTACT_RING)):
        covered = 0
        for start, end in _runs(band.mean(axis=0) >= 0.5):
            hands = hands or _Hands(mask, rgb)
            covered += 0 if hands.is_hand(side, start, end, band.shape[1]) else end - start
        worst = max(worst, covered / band.shape[1])
    return worst


@dataclass(frozen=True)
class Framing:
    """How the item sits in the frame."""

    coverage: float  # item share of the frame (a holding hand included)
    edge_cut: float  # largest share of one border side covered by the item (hand excluded)
    close_up: bool  # the item surface reaches every edge and fills the frame


def framing(mask: np.ndarray, rgb: np.ndarray) -> Framing:
    """Coverage, border contact and the close-up decision from the item and skin masks.

    A holding hand is part of a normal shopper photo: it is left out of the border
    contact (``edge_cut``). A close-up (item on all four sides and filling the frame) has
    no outline to fit in, so the cut-off check does not apply.
    """
    coverage = float(mask.mean())
    close_up = min(side_contact(mask)) >= _SIDE_REACHED and coverage >= _CLOSE_UP_COVERAGE
    return Framing(coverage=coverage, edge_cut=edge_cut(mask, rgb), close_up=bool(close_up))
