"""Exact Hamming nearest neighbours of 256-bit binary descriptors (ORB's), with faiss.

The copy check matches each new photo's ~400 ORB descriptors against each of its
candidates' (``vision/copyverify.py``) and against the 256 visual words
(``vision/copydetect.py``): about ten such searches per photo of a popular SKU, which
made the matching the largest part of the copy check. faiss's brute-force binary search
(``knn_hamming``) is a well-kept kernel for exactly this: 32-byte codes compared with
hardware popcounts and the k best kept per query. ``benchmarks/hamming_speed.py`` times it
against OpenCV's brute-force matcher and the numpy kernel it replaced, and fails when any
answer differs. The answers are exact: the same distances, and the same nearest index
wherever the nearest is unique (on ties the first, as OpenCV's matcher).

faiss runs each search as an OpenMP loop over the queries. OpenMP's thread count is a
per-thread setting, so every call sets its own thread's to one first: the service's
request and pool threads are already the parallelism, and a team of OpenMP threads per
search would only take turns with them on the same cores.
"""

from __future__ import annotations

import faiss
import numpy as np

BYTES = 32  # per 256-bit descriptor


def _codes(descriptors: np.ndarray) -> np.ndarray:
    """``descriptors`` as faiss reads them: C-contiguous (n, 32) uint8."""
    codes = np.ascontiguousarray(descriptors, np.uint8)
    if codes.ndim != 2 or codes.shape[1] != BYTES:
        raise ValueError(f"expected (n, {BYTES}) uint8 descriptors, got {codes.shape}")
    return codes


def _search(query: np.ndarray, stored: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) distances (int32) and indices (int64) of each query's ``k`` nearest (faiss
    answers an empty query with (0, k) arrays, after both sides' shapes are checked)."""
    faiss.omp_set_num_threads(1)  # this thread's searches: no OpenMP team (see above)
    distances, indices = faiss.knn_hamming(_codes(query), _codes(stored), k)
    return distances, indices


def nearest(query: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """(n,) index of each query descriptor's nearest stored one (the first of equals)."""
    return np.asarray(_search(query, stored, 1)[1][:, 0], np.int64)


def two_nearest(query: np.ndarray, stored: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query descriptor: the nearest stored one's index, its distance and the second
    nearest's distance (what Lowe's ratio test needs); ``stored`` holds at least two."""
    if len(stored) < 2:
        raise ValueError("two nearest neighbours need at least two stored descriptors")
    distances, indices = _search(query, stored, 2)
    return np.asarray(indices[:, 0], np.int64), distances[:, 0], distances[:, 1]
