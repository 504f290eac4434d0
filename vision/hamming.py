"""The two nearest binary descriptors (Hamming distance), for the copy check's fits.

The copy check matches a query's ORB descriptors (32 bytes each, up to 400) against each
search candidate's, keeping Lowe's ratio-tested nearest (``vision/copyverify.py``). With
many stored photos of a popular SKU that is 8 candidates per photo, and OpenCV's
brute-force matcher took about 0.6 ms a candidate in the service. faiss's
``IndexBinaryFlat`` computes the same exact distances in about half the time
(``python -m benchmarks.copy_verify_service``, 2026-12-03: 0.361 -> 0.174 ms a candidate).

Exact: distances are integers, so the nearest and the second nearest distance of each
query descriptor are the matcher's; where two train descriptors tie for the nearest, the
second distance equals the first and the ratio test drops the match whichever index
each library names, so the kept matches (query index, train index) are the same.

faiss runs OpenMP. With its default team (one thread per core), a process forked after a
search hangs in its own first search (the benchmarks fork worker pools), and a team of
threads would only compete with the service's own. So faiss is imported here only, on
first use, and set to one thread at once.
"""

from __future__ import annotations

import functools
from types import ModuleType

import numpy as np

BITS = 256  # an ORB descriptor: 32 bytes


@functools.cache
def _faiss() -> ModuleType:
    import faiss

    faiss.omp_set_num_threads(1)
    return faiss


def two_nearest(query: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``query`` ((n, 32) uint8), the Hamming distances (n, 2) int32 and
    row indices (n, 2) int64 of its two nearest rows of ``train`` (m, 32), nearest first;
    index -1 (and a huge distance) where ``train`` has fewer than two rows."""
    faiss = _faiss()
    index = faiss.IndexBinaryFlat(BITS)
    index.add(np.ascontiguousarray(train, np.uint8))
    distances, indices = index.search(np.ascontiguousarray(query, np.uint8), 2)
    return distances, indices
