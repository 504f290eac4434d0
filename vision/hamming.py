"""Exact Hamming nearest neighbours of 256-bit binary descriptors (ORB's), in numpy.

The copy check matches each new photo's ~400 ORB descriptors against each of its
candidates' (``vision/copyverify.py``) and against the 256 visual words
(``vision/copydetect.py``). OpenCV's brute-force matcher calls its Hamming norm once per
pair (32 bytes each), and building a ``DMatch`` per answer costs as much again; here a
descriptor is four 64-bit lanes, and each lane of every pair is XORed and counted in one
numpy pass over an (n, m) block. ``benchmarks/hamming_speed.py`` times both: the same
answers in about half the time. The answers are exact: the same distances, and the same
nearest index wherever the nearest is unique (on ties the first, as OpenCV's).
"""

from __future__ import annotations

import numpy as np

LANES = 4  # 64-bit words per 256-bit descriptor
_FAR = np.iinfo(np.uint16).max


def lanes(descriptors: np.ndarray) -> np.ndarray:
    """(LANES, n) uint64: the descriptors (n, 32) uint8, lane by lane, each lane contiguous
    so that a lane of every pair is one broadcast."""
    desc = np.ascontiguousarray(descriptors, np.uint8)
    if desc.ndim != 2 or desc.shape[1] != 8 * LANES:
        raise ValueError(f"expected (n, {8 * LANES}) uint8 descriptors, got {desc.shape}")
    return np.ascontiguousarray(desc.view(np.uint64).T)


def distances(query: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """(n, m) uint16 Hamming distances between ``lanes`` ``query`` (n) and ``stored`` (m)."""
    n, m = query.shape[1], stored.shape[1]
    xor = np.empty((n, m), np.uint64)
    bits = np.empty((n, m), np.uint8)
    out = np.zeros((n, m), np.uint16)
    for k in range(LANES):
        np.bitwise_xor(query[k][:, None], stored[k][None, :], out=xor)
        np.bitwise_count(xor, out=bits)
        out += bits
    return out


def nearest(query: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """(n,) index of each query descriptor's nearest stored one (the first of equals)."""
    return np.asarray(distances(query, stored).argmin(axis=1), np.int64)


def two_nearest(query: np.ndarray, stored: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query descriptor: the nearest stored one's index, its distance and the second
    nearest's distance (what Lowe's ratio test needs); ``stored`` holds at least two."""
    if stored.shape[1] < 2:
        raise ValueError("two nearest neighbours need at least two stored descriptors")
    dist = distances(query, stored)
    rows = np.arange(dist.shape[0])
    first = dist.argmin(axis=1)
    d1 = dist[rows, first]
    dist[rows, first] = _FAR
    return np.asarray(first, np.int64), d1, dist.min(axis=1)
