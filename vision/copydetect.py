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
   vector of its content box (``vision/copyframe.py``: the photo inside a border or a
   screenshot's app frame, described on its own). Search is a dot product with every
   stored vector (``DIM`` float32 each).
2. **Verification** of the best few candidates (``vision/copyverify.py``): the
   keypoints must agree on one similarity transform, and then the whole overlap must
   agree densely, for the whole query or for its content box.

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

import dataclasses
import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision import copyframe, hamming

SIDE = 384  # long side of the grey image the features are computed on
ELONGATED_FROM = 1.6  # long / short side from which a frame counts as elongated
ELONGATED = 2.0  # an elongated frame's long side, at most, in SIDE
MIN_SIDE = 48  # a frame thinner than this (in the resized grey) gets no keypoints
FEATURES = 400  # ORB keypoints kept per photo
WORDS = 256  # visual words in the vocabulary
DIM = 64  # length of the global vector
THUMB = 4  # the stored thumbnail is the SIDE-px grey image shrunk 4 times (96 px)
# Candidates less similar than this to the query (whole or content box) are not verified:
# each one spared is a keypoint fit (about 0.35 ms). In the copy benchmark
# (benchmarks/copy_detection.py, ``search_floor``) the least similar of the 2,319 copies the
# search found scored 0.43 (1st percentile 0.60); other photos of the same SKU score a
# median of about 0.2 (the service bench's), so in a store holding few photos of a SKU
# most of its candidates are spared. In a large store the 8 nearest are all closer.
SEARCH_FLOOR = 0.3
VOCABULARY = Path(__file__).with_name("copydetect_vocab.npz")
_MAGIC = b"CD1"


@dataclass(frozen=True)
class Vocabulary:
    centres: np.ndarray  # (WORDS, 32) uint8: the 256-bit word centres
    idf: np.ndarray  # (WORDS,) float32
    mean: np.ndarray  # (WORDS,) float32, subtracted before the projection
    projection: np.ndarray  # (WORDS, DIM) float32

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            centres=self.centres,
            idf=self.idf,
            mean=self.mean,
            projection=self.projection,
        )


@functools.cache
def vocabulary(path: Path = VOCABULARY) -> Vocabulary:
    with np.load(path) as z:
        centres = np.ascontiguousarray(z["centres"], dtype=np.uint8)
        return Vocabulary(
            centres=centres,
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
    padding: np.ndarray | None = None  # its padding mask (a query's; vision/copyframe.py)

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
    parts: tuple[CopyDescriptor, ...] = ()  # the query's content box, described alone


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
    """Index of the nearest word (Hamming; the first of equals) of each 32-byte
    descriptor (``vision/hamming.py``: OpenCV's brute-force matcher's answers, faster)."""
    return hamming.nearest(descriptors, vocab.centres)


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
    """The global vector and local features of one decoded photo, and (for a query)
    those of its content box when padding surrounds it (``vision/copyframe.py``)."""
    vocab = vocab or vocabulary()
    whole = _describe(rgb, vocab)
    grey = whole.local.grey
    if grey is None or min(grey.shape) < MIN_SIDE:
        return whole
    padding = copyframe.padding_mask(grey)
    local = dataclasses.replace(whole.local, padding=padding)
    box = copyframe.content_box(padding)
    if box is None:
        return dataclasses.replace(whole, local=local)
    h, w = grey.shape
    sy, sx = rgb.shape[0] / h, rgb.shape[1] / w
    x0, y0, x1, y1 = box
    inner = rgb[round(y0 * sy) : round(y1 * sy), round(x0 * sx) : round(x1 * sx)]
    part = _describe(inner, vocab)
    if part.local.grey is not None:
        part = dataclasses.replace(
            part,
            local=dataclasses.replace(part.local, padding=copyframe.padding_mask(part.local.grey)),
        )
    return dataclasses.replace(whole, local=local, parts=(part,))


def _describe(rgb: np.ndarray, vocab: Vocabulary) -> CopyDescriptor:
    local = local_features(rgb)
    words = words_of(local.descriptors, vocab)
    return CopyDescriptor(project(_histogram(words, vocab), vocab), local)


def query_vectors(d: CopyDescriptor) -> np.ndarray:
    """(m, DIM): the whole query's vector, then its content box's (``parts``), for the
    candidate search."""
    out = [d.vector, *(p.vector for p in d.parts if p.vector.any())]
    return np.stack(out).astype(np.float32)


def search(
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    k_part: int,
    floor: float = SEARCH_FLOOR,
) -> np.ndarray:
    """Row indices to verify: the ``k`` nearest to the whole query (``queries[0]``), then
    the ``k_part`` per part nearest to any of its parts (by the best part's similarity)
    not already listed; none whose similarity (the whole's, or the best part's) is below
    ``floor`` (``SEARCH_FLOOR``: no copy is that far, and each one left out saves a
    keypoint fit).

    Two partial sorts over the stored vectors, whatever the number of parts: at 100,000
    photos a partial sort per part cost about 0.45 ms each."""
    if len(vectors) == 0:
        return np.zeros(0, np.int64)
    sims = vectors @ queries.T  # one pass over the stored vectors for all of them
    picked = _top(sims[:, 0], k)
    picked = picked[sims[picked, 0] >= floor]
    if sims.shape[1] > 1:
        best_part = sims[:, 1:].max(axis=1)
        best_part[picked] = -np.inf  # listed already
        more = _top(best_part, k_part * (sims.shape[1] - 1))
        picked = np.concatenate([picked, more[best_part[more] >= floor]])
    return np.asarray(picked, np.int64)


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` highest ``scores``, highest first (stable on ties)."""
    n = min(n, len(scores))
    if n <= 0:
        return np.zeros(0, np.int64)
    top = np.argpartition(-scores, n - 1)[:n]
    return np.asarray(top[np.argsort(-scores[top], kind="stable")], np.int64)


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, "<f2").tobytes()


def vector_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<f2").astype(np.float32)


def nearest(vectors: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the ``k`` stored vectors most similar to ``query`` (dot product of
    unit vectors), best first; ``vectors`` is (n, DIM) float32."""
    if len(vectors) == 0 or k <= 0:
        return np.zeros(0, np.int64)
    return _top(vectors @ query, k)
