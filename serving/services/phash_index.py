"""Perceptual hashes of every shopper photo, held in memory for the reused-photo check.

The check compares a new upload with every shopper photo of every other return. Reading
all of those rows on each upload made an upload O(all photos): about 4 ms of the 12 MP
upload's CPU with a few hundred stored photos in the benchmark, and seconds at a
year's volume. The index holds the hashes as a uint64 array and, inside each upload's
read transaction, reads only rows created since its last read (``photos`` has an index
on ``(role, created_at)``); the distance is one vectorised XOR + popcount.

It stays exact however rows arrive. Rows are re-read from a little before the newest
time seen, so a row stamped earlier but committed later (concurrent uploads, other
worker processes) is picked up; ids already held are skipped. Then a count of the
stored shopper photos is compared with the number held, and any mismatch (a clock
that went backwards, a deleted row) reloads everything.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from serving.storage import repo

# How far before the newest stamp already read a top-up starts: longer than any upload
# takes from reading the clock to committing.
OVERLAP = timedelta(minutes=10)


class PhashIndex:
    """Process-local and thread-safe; every worker process keeps its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._hashes = np.zeros(0, np.uint64)
        self._returns = np.zeros(0, np.int64)  # codes into _return_ids
        self._photo_ids: list[str] = []
        self._held: set[str] = set()
        self._return_ids: list[str] = []
        self._return_codes: dict[str, int] = {}
        self._newest: datetime | None = None

    def __len__(self) -> int:
        return len(self._photo_ids)

    def refresh(self, session: Session) -> None:
        """Add the rows stored since the last refresh (call inside a read transaction)."""
        with self._lock:
            since = None if self._newest is None else self._newest - OVERLAP
            self._add(repo.shopper_phashes_since(session, since))
            if repo.shopper_photo_count(session) != len(self._photo_ids):
                self._reset()
                self._add(repo.shopper_phashes_since(session, None))

    def nearest(self, hashes: Sequence[int], exclude_return: str
                ) -> tuple[int, str, str] | None:
        """(distance, return id, photo id) of the closest photo of another return."""
        with self._lock:
            stored, returns, ids = self._hashes, self._returns, self._photo_ids
            own = self._return_codes.get(exclude_return, -1)
            others = np.flatnonzero(returns != own)
            if not hashes or others.size == 0:
                return None
            query = np.asarray(hashes, dtype=np.uint64)
            dist = np.bitwise_count(stored[others][None, :] ^ query[:, None]).min(axis=0)
            best = int(others[int(dist.argmin())])
            return int(dist.min()), self._return_ids[int(returns[best])], ids[best]

    def _add(self, rows: Sequence[tuple[str, str, str, datetime]]) -> None:
        fresh = [r for r in rows if r[0] not in self._held]
        if fresh:
            codes = [self._code(r[1]) for r in fresh]
            self._hashes = np.concatenate(
                [self._hashes, np.array([int(r[2], 16) for r in fresh], np.uint64)])
            self._returns = np.concatenate([self._returns, np.array(codes, np.int64)])
            self._photo_ids.extend(r[0] for r in fresh)
            self._held.update(r[0] for r in fresh)
        if rows:
            newest = max(r[3] for r in rows)
            self._newest = newest if self._newest is None else max(self._newest, newest)

    def _code(self, return_id: str) -> int:
        code = self._return_codes.get(return_id)
        if code is None:
            code = self._return_codes[return_id] = len(self._return_ids)
            self._return_ids.append(return_id)
        return code
