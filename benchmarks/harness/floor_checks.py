"""A second floor: the work that decides what a shopper is told, in-process.

The floor (``benchmarks/harness/floor.py``) is decode + one model run, the two steps no
implementation can skip. The service also runs two checks that change the answer: the
quality gate (retakes) and the copy check (reused and catalog photos). This floor adds
them, with the service's own parts and the service's layout of one upload: the decode,
then the copy check on a task of its own (``copydetect.describe``, the candidate search,
every keypoint fit and the dense checks of ``copy_index.best_of_stored``, against stored
shopper photos and the catalog reference photo), beside ``Grader.grade_decoded`` (the
model on the calling thread, the gate and the perceptual hash on the gate pool).

The stored photos' vectors are held in memory and their local features as the bytes the
database stores, read back per check as the service does; no SQL, HTTP, photo store,
policy or decision write. So the service against this floor is what its plumbing costs
over the product's decisive work, where the plain floor also counts the two checks as
overhead (the choice the README's Performance section leaves to the product's owner).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from benchmarks.harness.floor import latency, throughput
from serving.services.copy_index import CANDIDATES, PART_CANDIDATES, best_of_stored
from vision import copydetect
from vision.types import DecodedPhoto


class CheckedFloor:
    """Decode, model, quality gate and copy check of one upload, against ``stored``
    shopper photos (encoded uploads) and one catalog ``reference`` photo."""

    def __init__(self, grader: Any, stored: Sequence[bytes], reference: bytes) -> None:
        self.grader = grader
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="checked-floor")
        self.shop = _Stored([copydetect.describe(grader.decode(d).rgb) for d in stored])
        self.refs = _Stored([copydetect.describe(grader.decode(reference).rgb)])

    def close(self) -> None:
        self._pool.shutdown()

    def check(self, photo: DecodedPhoto) -> tuple[float, float]:
        """The copy check of one photo: its best verified score among the stored shopper
        photos and among the reference photos (0 when none scored)."""
        d = copydetect.describe(photo.rgb)
        queries = copydetect.query_vectors(d)
        return self.shop.best(d, queries), self.refs.best(d, queries)

    def once(self, uploads: Sequence[bytes]) -> float:
        """Milliseconds for one upload of ``uploads``, laid out as the service runs it."""
        start = time.perf_counter()
        decoded = [self.grader.decode(data) for data in uploads]
        copies = [self._pool.submit(self.check, p) for p in decoded]
        self.grader.grade_decoded(decoded, describe=False)
        for c in copies:
            c.result()
        return (time.perf_counter() - start) * 1000.0

    def latency(self, groups: Sequence[Sequence[bytes]]) -> dict[str, Any]:
        """Sequential uploads: per-upload and per-photo latency percentiles."""
        return latency(self.once, groups)

    def throughput(
        self, groups: Sequence[Sequence[bytes]], threads: Sequence[int]
    ) -> dict[str, Any]:
        """Photos/s and process CPU per photo with N uploads in flight; the best N."""
        return throughput(self.once, groups, threads)


class _Stored:
    """Stored photos of one kind: vectors in memory, local features as stored bytes."""

    def __init__(self, descriptors: Sequence[copydetect.CopyDescriptor]) -> None:
        self.vectors = np.stack([d.vector for d in descriptors]).astype(np.float32)
        self.features = [d.local.to_bytes() for d in descriptors]

    def best(self, d: copydetect.CopyDescriptor, queries: np.ndarray) -> float:
        if not queries[0].any():
            return 0.0
        top = copydetect.search(self.vectors, queries, CANDIDATES, PART_CANDIDATES)
        found = best_of_stored(d, [self.features[int(i)] for i in top])
        return found[1] if found is not None else 0.0
