"""Copy detection: is this upload an edited copy of a photo seen before?

The 64-bit perceptual hash (``vision/phash.py``) catches exact and near-exact copies, but
a crop, a small rotation, an added border or a screenshot of the photo moves most of its
bits. This module adds a signal that survives those edits, in two stages:

1. **Candidate search** with a compact global vector: ORB keypoints (rotation invariant,
   on an 8-level scale pyramid) of the grey photo, resized to ``SIDE`` px on its long side
   (an elongated frame, a phone screenshot, on its short side), are quantised against a
   fixed vocabulary of ``WORDS`` binary visual words; the tf-idf-weighted, square-rooted
   word histogram is projected on ``DIM`` principal axes and normalised. A crop keeps
   most of the words, and brightness, contrast and JPEG barely change ORB's binary tests.
   A border or a screenshot's frame adds words, so a query also searches with the
   vectors of parts of its frame (``WINDOWS``). Search is a dot product with every stored
   vector (``DIM`` float32 each).
2. **Verification** of the best few candidates. First the local features: ratio-tested
   Hamming matches, then a RANSAC fit of a similarity transform (rotation + uniform scale
   + shift: what a crop, rotation, border or screenshot does); fewer than
   ``MIN_INLIERS`` agreeing matches: no copy. Then the whole overlap, densely: the new
   photo is moved by that transform onto the candidate's stored thumbnail, its grey
   levels fitted to the thumbnail's (undoing brightness and contrast), and the score is
   the share of the overlap's blocks that agree. Keypoints alone cannot tell a copy from
   another photo of the same item: printed artwork, a logo or a rigid product seen from a
   similar angle match on one transform too. But only a copy also agrees on the rest of
   the frame: the table, the wall, the light. Blocks where the new photo is flat (an
   added border, a screenshot's plain frame) say nothing and are left out.

The vocabulary (``copydetect_vocab.npz``: word centres, idf weights, projection) was
fitted once on generated photos of another seed than the benchmark's held-out set
(``benchmarks/copy_detection.py --fit-vocabulary``); it is data, not weights of a model,
and nothing is downloaded.

Both parts are stored per photo: the vector (``DIM`` float16, 128 bytes) is held in
memory for the search; the local features (<= ``FEATURES`` keypoints: two float16
coordinates + a 32-byte ORB descriptor each) and the 96 px grey thumbnail (about 23 KB
in all) are read only for the candidates.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SIDE = 384  # long side of the grey image the features are computed on
ELONGATED_FROM = 1.6  # long / short side from which a frame counts as elongated
ELONGATED = 2.0  # an elongated frame's long side, at most, in SIDE
MIN_SIDE = 48  # a frame thinner than this (in the resized grey) gets no keypoints
FEATURES = 400  # ORB keypoints kept per photo
WORDS = 256  # visual words in the vocabulary
DIM = 64  # length of the global vector
RATIO = 0.85  # Lowe's ratio test on Hamming distances
RANSAC_PX = 5.0  # inlier reprojection error, in SIDE-px
MIN_INLIERS = 12  # fewer: no transform, score 0
THUMB = 4  # the stored thumbnail is the SIDE-px grey image shrunk 4 times (96 px)
MIN_PIXELS = 300  # thumbnail px the dense check needs (of 96 x 96)
BLOCK = 8  # thumbnail px per block
MIN_BLOCKS = 6  # blocks the dense check needs
FLAT = 4.0  # grey standard deviation (5 x 5 px) under which the query shows nothing
SOFT = 1.0  # thumbnail px of blur on both sides: a pixel of misfit is no disagreement
TOLERANCE = 0.2  # a block agrees when its median residual <= this share of the contrast
VOCABULARY = Path(__file__).with_name("copydetect_vocab.npz")
_MAGIC = b"CD1"


@dataclass(frozen=True)
class Vocabulary:
    centres: np.ndarray  # (WORDS, 4) uint64: the 256-bit word centres
    idf: np.ndarray  # (WORDS,) float32
    mean: np.ndarray  # (WORDS,) float32, subtracted before the projection
    projection: np.ndarray  # (WORDS, DIM) float32

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            centres=self.centres.view(np.uint8).reshape(len(self.centres), 32),
            idf=self.idf,
            mean=self.mean,
            projection=self.projection,
        )


@functools.cache
def vocabulary(path: Path = VOCABULARY) -> Vocabulary:
    with np.load(path) as z:
        centres = np.ascontiguousarray(z["centres"], dtype=np.uint8)
        return Vocabulary(
            centres=centres.view(np.uint64).reshape(len(centres), 4),
            idf=z["idf"].astype(np.float32),
            mean=z["mean"].astype(np.float32),
            projection=z["projection"].astype(np.float32),
        )


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoint positions (in the ``SIDE``-px frame) and their ORB descriptors, plus a
    small grey thumbnail of the frame (``THUMB`` of its size) for the dense check."""

    points: np.ndarray  # (n, 2) float32
    descriptors: np.ndarray  # (n, 32) uint8
    thumb: np.ndarray  # (h, w) uint8: the SIDE-px grey image shrunk by THUMB
    grey: np.ndarray | None = None  # the SIDE-px grey image itself (a query's; not stored)

    def __len__(self) -> int:
        return len(self.points)

    def to_bytes(self) -> bytes:
        n = len(self.points)
        th, tw = self.thumb.shape
        return (
            _MAGIC
            + struct.pack("<HHH", n, tw, th)
            + self.points.astype("<f2").tobytes()
            + np.ascontiguousarray(self.descriptors, np.uint8).tobytes()
            + np.ascontiguousarray(self.thumb, np.uint8).tobytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> LocalFeatures:
        if data[:3] != _MAGIC or len(data) < 9:
            raise ValueError("not a stored copy-detection feature blob")
        n, tw, th = struct.unpack("<HHH", data[3:9])
        if len(data) != 9 + n * 36 + tw * th:
            raise ValueError(f"feature blob of {len(data)} bytes does not hold {n} keypoints")
        points = np.frombuffer(data, "<f2", 2 * n, 9).astype(np.float32).reshape(n, 2)
        desc = np.frombuffer(data, np.uint8, 32 * n, 9 + 4 * n).reshape(n, 32)
        thumb = np.frombuffer(data, np.uint8, tw * th, 9 + 36 * n).reshape(th, tw)
        return cls(points, desc, thumb)


@dataclass(frozen=True)
class CopyDescriptor:
    vector: np.ndarray  # (DIM,) float32, unit length (all zeros: no keypoints)
    local: LocalFeatures
    words: np.ndarray | None = None  # each keypoint's word (a query's; not stored)


def grey_for_features(rgb: np.ndarray) -> np.ndarray:
    """The grey image, long side resized to ``SIDE``; an elongated one (a phone
    screenshot: the photo in it spans the short side) short side to ``SIDE``, long side
    at most ``ELONGATED`` times that."""
    if rgb.ndim not in (2, 3) or rgb.size == 0:
        raise ValueError(f"expected an HxWx3 or HxW image, got shape {rgb.shape}")
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    h, w = grey.shape
    long, short = max(h, w), min(h, w)
    scale = SIDE / long
    if long >= ELONGATED_FROM * short:
        scale = min(SIDE / short, ELONGATED * SIDE / long)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(grey, size, interpolation=interp), np.uint8)


def local_features(rgb: np.ndarray) -> LocalFeatures:
    grey = grey_for_features(rgb)
    h, w = grey.shape
    thumb = cv2.resize(
        grey, (max(1, round(w / THUMB)), max(1, round(h / THUMB))), interpolation=cv2.INTER_AREA
    )
    n = round(FEATURES * max(h, w) / SIDE)  # an elongated frame: more of them
    keypoints: Sequence[cv2.KeyPoint] = ()
    desc = None
    if min(h, w) >= MIN_SIDE:  # a sliver has no room for ORB's 31 px patches
        orb = cv2.ORB.create(nfeatures=n, fastThreshold=10, edgeThreshold=15)
        keypoints, desc = orb.detectAndCompute(grey, None)
    if desc is None or not keypoints:
        none = np.zeros((0, 2), np.float32)
        return LocalFeatures(none, np.zeros((0, 32), np.uint8), thumb, grey)
    points = np.array([k.pt for k in keypoints], np.float32)
    return LocalFeatures(points, np.asarray(desc, np.uint8), thumb, grey)


def words_of(descriptors: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """Index of the nearest word (Hamming) of each 32-byte descriptor."""
    if len(descriptors) == 0:
        return np.zeros(0, np.int64)
    d = np.ascontiguousarray(descriptors, np.uint8).view(np.uint64).reshape(-1, 4)
    dist = np.bitwise_count(d[:, None, :] ^ vocab.centres[None, :, :]).sum(axis=2)
    return np.asarray(dist.argmin(axis=1), np.int64)


def bow(descriptors: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """The tf-idf, square-rooted, unit-length word histogram (WORDS,)."""
    return _histogram(words_of(descriptors, vocab), vocab)


def _histogram(words: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    hist = np.bincount(words, minlength=len(vocab.idf)).astype(np.float32)
    hist = np.sqrt(hist * vocab.idf)
    norm = float(np.linalg.norm(hist))
    return hist / norm if norm > 0 else hist


def project(hist: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    if not hist.any():
        return np.zeros(vocab.projection.shape[1], np.float32)
    v = (hist - vocab.mean) @ vocab.projection
    norm = float(np.linalg.norm(v))
    return (v / norm).astype(np.float32) if norm > 0 else v.astype(np.float32)


def describe(rgb: np.ndarray, vocab: Vocabulary | None = None) -> CopyDescriptor:
    """The global vector and local features of one decoded photo."""
    vocab = vocab or vocabulary()
    local = local_features(rgb)
    words = words_of(local.descriptors, vocab)
    return CopyDescriptor(project(_histogram(words, vocab), vocab), local, words)


# Parts of a query (fractions x0, y0, x1, y1 of its frame) searched besides the whole: a
# screenshot or a framed copy shows the photo in one part, among other things.
WINDOWS = (
    (0.1, 0.1, 0.9, 0.9),
    (0.0, 0.0, 1.0, 0.6),
    (0.0, 0.2, 1.0, 0.8),
    (0.0, 0.4, 1.0, 1.0),
    (0.0, 0.0, 0.6, 1.0),
    (0.2, 0.0, 0.8, 1.0),
    (0.4, 0.0, 1.0, 1.0),
)
MIN_WINDOW_POINTS = 40


def query_vectors(d: CopyDescriptor, vocab: Vocabulary | None = None) -> np.ndarray:
    """(m, DIM): the whole query's vector, then those of its parts (``WINDOWS``) with
    enough keypoints, for the candidate search."""
    vocab = vocab or vocabulary()
    out = [d.vector]
    if d.words is not None and d.local.grey is not None and len(d.words):
        h, w = d.local.grey.shape
        x, y = d.local.points[:, 0] / w, d.local.points[:, 1] / h
        for x0, y0, x1, y1 in WINDOWS:
            inside = (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
            if int(inside.sum()) >= MIN_WINDOW_POINTS:
                out.append(project(_histogram(d.words[inside], vocab), vocab))
    return np.stack(out).astype(np.float32)


def search(vectors: np.ndarray, queries: np.ndarray, k: int, k_part: int) -> np.ndarray:
    """Row indices to verify: the ``k`` nearest to the whole query (``queries[0]``), then
    the ``k_part`` nearest to each part not already listed."""
    if len(vectors) == 0:
        return np.zeros(0, np.int64)
    sims = vectors @ queries.T  # one pass over the stored vectors for all of them
    picked: list[int] = []
    for j in range(sims.shape[1]):
        n = min(k if j == 0 else k_part, len(vectors))
        top = np.argpartition(-sims[:, j], n - 1)[:n]
        for i in top[np.argsort(-sims[top, j], kind="stable")]:
            if int(i) not in picked:
                picked.append(int(i))
    return np.asarray(picked, np.int64)


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, "<f2").tobytes()


def vector_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<f2").astype(np.float32)


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


def agreement(query: np.ndarray, model: np.ndarray, stored_thumb: np.ndarray) -> float:
    """Share of the overlap's blocks where ``query`` (SIDE-px grey), moved by ``model``
    into the stored photo's frame, looks like the stored thumbnail.

    The keypoints of another photo of the same item can agree on one transform, over the
    item; but the rest of the frame (table, wall, light) differs, while a copy agrees
    everywhere it overlaps. Brightness and contrast edits are undone first by one linear
    fit of the grey levels over the whole overlap; a block agrees when its residual is
    small against the overlap's contrast.
    """
    to_thumb = model / THUMB  # SIDE-px of the stored photo -> its thumbnail px
    to_thumb[:, 2] -= (THUMB - 1) / (2 * THUMB)  # pixel centres: thumb px u is at 4u + 1.5
    scale = float(np.hypot(to_thumb[0, 0], to_thumb[1, 0]))
    src = query
    if scale < 0.7:  # shrinking: low-pass first, so the warp does not alias
        src = cv2.GaussianBlur(query, (0, 0), 0.45 / scale)
    th, tw = stored_thumb.shape
    warped = cv2.warpAffine(src, to_thumb, (tw, th), flags=cv2.INTER_LINEAR).astype(np.float32)
    valid = cv2.warpAffine(np.full(query.shape, 255, np.uint8), to_thumb, (tw, th)) == 255
    ref = cv2.GaussianBlur(stored_thumb.astype(np.float32), (0, 0), SOFT)
    warped = np.asarray(cv2.GaussianBlur(warped, (0, 0), SOFT), np.float32)
    # Pixels inside the query's frame where the query shows something: a flat stretch of
    # the query (an added border, a screenshot's plain frame) says nothing either way.
    local_sd = np.sqrt(
        np.maximum(cv2.blur(warped * warped, (5, 5)) - cv2.blur(warped, (5, 5)) ** 2, 0)
    )
    inner = cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    mask = inner & (local_sd >= FLAT)
    if int(mask.sum()) < MIN_PIXELS:
        return 0.0
    q, r = warped[mask], ref[mask]
    spread = float(r.std())
    if spread < FLAT or float(q.std()) < FLAT:
        return 0.0
    # Grey levels of the query -> the stored photo's (brightness and contrast edits): a
    # robust start from the 10th and 90th percentiles, then least squares on the best
    # fitting 60 % (rotation fill, borders and clipped highlights do not pull it).
    (q10, q90), (r10, r90) = np.percentile(q, [10, 90]), np.percentile(r, [10, 90])
    gain = (r90 - r10) / max(q90 - q10, 1e-3)
    offset = float(np.median(r) - gain * np.median(q))
    for _ in range(2):
        misfit = np.abs(q * gain + offset - r)
        keep = misfit <= np.percentile(misfit, 60)
        if int(keep.sum()) <= 16 or float(q[keep].std()) <= 0:
            break
        gain, offset = np.polyfit(q[keep], r[keep], 1)
    residual = np.abs(warped * gain + offset - ref)
    # Per block, the median residual of its pixels: the thin lines where the query's
    # content ends (a crop's rotated edge against its fill or a border) are a minority.
    by, bx = th // BLOCK, tw // BLOCK
    cells = residual[: by * BLOCK, : bx * BLOCK].reshape(by, BLOCK, bx, BLOCK)
    inside = mask[: by * BLOCK, : bx * BLOCK].reshape(by, BLOCK, bx, BLOCK)
    cells = np.where(inside, cells, np.nan).transpose(0, 2, 1, 3).reshape(by * bx, -1)
    used = inside.transpose(0, 2, 1, 3).reshape(by * bx, -1).sum(axis=1) >= BLOCK * BLOCK // 2
    if int(used.sum()) < MIN_BLOCKS:
        return 0.0
    medians = np.nanmedian(cells[used], axis=1)
    return float(np.mean(medians <= TOLERANCE * spread))


def verify(a: LocalFeatures, b: LocalFeatures) -> float:
    """How surely ``a`` (a query, with its grey image) is a copy of ``b`` (stored): the
    dense agreement of the overlap under the transform the keypoints agree on, in [0, 1];
    0 when fewer than ``MIN_INLIERS`` matches agree on one."""
    model, inliers = transform(a, b)
    if model is None or inliers < MIN_INLIERS or a.grey is None:
        return 0.0
    return round(agreement(a.grey, model, b.thumb), 4)


def nearest(vectors: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the ``k`` stored vectors most similar to ``query`` (dot product of
    unit vectors), best first; ``vectors`` is (n, DIM) float32."""
    if len(vectors) == 0 or k <= 0:
        return np.zeros(0, np.int64)
    sims = vectors @ query
    k = min(k, len(sims))
    top = np.argpartition(-sims, k - 1)[:k]
    return np.asarray(top[np.argsort(-sims[top], kind="stable")], np.int64)
