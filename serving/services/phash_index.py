"""Perceptual hashes of every shopper photo, held in memory for the reused-photo check.

The check compares a new upload with every shopper photo of every other return.
Reading all of those rows on each upload made an upload O(all photos). In the
benchmark that was about 4 ms of a 12 MP upload's CPU with a few hundred stored
photos, and at a year's volume it would be seconds. The index holds the hashes as a
uint64 array, so the distance is one vectorised XOR + popcount. Each upload's read
transaction tops the index up cheaply:

* rows this process commits are added right after the commit (:meth:`add`);
* rows other worker processes committed are noticed by comparing counts over a short
  recent window: a count on the ``(role, created_at)`` index against the rows held for
  that window. The window covers the time from an upload's clock reading to its commit.
  When the counts differ, the rows are read only from where the missing ones start
  (``_read_from``): with two workers nearly every upload finds the other's newest rows
  missing, and reading the whole window each time cost O(uploads a minute) per upload
  (the context read took 2.4 ms of CPU per 1600 px upload at 16 clients, 1.2 since:
  ``benchmarks/profile_service.py``, 2026-12-04);
* a full reload every ``resync_s`` picks up anything stamped before the window: a
  clock that went backwards, or a restore.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

import numpy as np
from sqlalchemy.orm import Session

from serving.storage import repo

WINDOW = timedelta(seconds=60)  # longer than any upload takes from clock reading to commit
# Suffixes of the window counted when rows are missing, back from the newest held row.
_PROBES = (timedelta(seconds=1), timedelta(seconds=4), timedelta(seconds=16))
RESYNC_S = 600.0

Row = tuple[str, str, str, datetime]  # photo id, return id, phash hex, created at
P = TypeVar("P")  # one photo's payload as the database holds it


def epoch_seconds(at: datetime) -> float:
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


class RecentShopperPhotos(Generic[P]):
    """What every in-memory index of shopper photos keeps besides its payload (``P``, one
    value per photo): each photo's id, return and time, and the top-up described above.
    Process-local and thread-safe; every worker process keeps its own. A subclass says
    how to count and read the rows of a window and how to hold their payload."""

    def __init__(
        self, *, resync_s: float = RESYNC_S, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._resync_s, self._monotonic = resync_s, monotonic
        self._reset()

    def _reset(self) -> None:
        self._reset_payload()
        self._returns = np.zeros(0, np.int64)  # codes into _return_ids
        self._times = np.zeros(0, np.float64)  # created_at, epoch seconds
        self._photo_ids: list[str] = []
        self._held: set[str] = set()
        self._return_ids: list[str] = []
        self._return_codes: dict[str, int] = {}
        self._loaded_at: float | None = None

    def _reset_payload(self) -> None:
        raise NotImplementedError

    def _append_payload(self, values: Sequence[P]) -> None:
        raise NotImplementedError

    def _count_since(self, session: Session, since: datetime) -> int:
        raise NotImplementedError

    def _rows_since(
        self, session: Session, since: datetime | None
    ) -> Sequence[tuple[str, str, P, datetime]]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._photo_ids)

    def _refresh_photos(self, session: Session) -> None:
        """Top up (the caller holds the lock, inside a read transaction)."""
        now = self._monotonic()
        since: datetime | None = None  # None: read every shopper photo
        if self._loaded_at is None or now - self._loaded_at >= self._resync_s:
            self._reset()
            self._loaded_at = now
        elif len(self._times):
            newest = datetime.fromtimestamp(float(self._times.max()), UTC)
            since = self._read_from(session, newest)
            if since is None:
                return
        self._add(self._rows_since(session, since))

    def _missing_since(self, session: Session, since: datetime) -> int:
        """Rows stored from ``since`` on, less the rows held from then on."""
        held = int(np.count_nonzero(self._times >= epoch_seconds(since)))
        return self._count_since(session, since) - held

    def _read_from(self, session: Session, newest: datetime) -> datetime | None:
        """Where the rows this index lacks start (None: it lacks none in the window).

        One count over the window says how many are missing. They are nearly always the
        other workers' newest uploads, so narrower suffixes are counted next, from the
        newest held row back 1 s, then 4 and 16 s: the first that lacks as many as the
        whole window holds every missing row, and only it is read. Both sides compare the
        same microsecond times, so the counts agree exactly. A row deleted in the window
        can hide a missing one from the counts, here as in the whole-window count, until
        the next full reload (``resync_s``)."""
        since = newest - WINDOW
        missing = self._missing_since(session, since)
        if missing == 0:
            return None
        for back in _PROBES:
            start = newest - back
            if start <= since:
                break
            if self._missing_since(session, start) == missing:
                return start
        return since

    def add(self, rows: Sequence[tuple[str, str, P, datetime]]) -> None:
        """Photos this process has just committed."""
        with self._lock:
            self._add(rows)

    def _others(self, exclude_return: str) -> np.ndarray:
        """Positions of the photos that belong to another return than ``exclude_return``."""
        return np.flatnonzero(self._returns != self._return_codes.get(exclude_return, -1))

    def _add(self, rows: Sequence[tuple[str, str, P, datetime]]) -> None:
        fresh = [r for r in rows if r[0] not in self._held and r[2]]
        if not fresh:
            return
        self._append_payload([r[2] for r in fresh])
        self._returns = np.concatenate(
            [self._returns, np.array([self._code(r[1]) for r in fresh], np.int64)]
        )
        self._times = np.concatenate([self._times, np.array([epoch_seconds(r[3]) for r in fresh])])
        self._photo_ids.extend(r[0] for r in fresh)
        self._held.update(r[0] for r in fresh)

    def _code(self, return_id: str) -> int:
        code = self._return_codes.get(return_id)
        if code is None:
            code = self._return_codes[return_id] = len(self._return_ids)
            self._return_ids.append(return_id)
        return code


class PhashIndex(RecentShopperPhotos[str]):
    """The perceptual hashes (hex in the database, uint64 here)."""

    def _reset_payload(self) -> None:
        self._hashes = np.zeros(0, np.uint64)

    def _append_payload(self, values: Sequence[str]) -> None:
        hashes = np.array([int(h, 16) for h in values], np.uint64)
        self._hashes = np.concatenate([self._hashes, hashes])

    def _count_since(self, session: Session, since: datetime) -> int:
        return repo.shopper_photo_count(session, since)

    def _rows_since(self, session: Session, since: datetime | None) -> Sequence[Row]:
        return repo.shopper_phashes_since(session, since)

    def refresh(self, session: Session) -> None:
        """Bring the index up to date (call inside a read transaction)."""
        with self._lock:
            self._refresh_photos(session)

    def nearest(self, hashes: Sequence[int], exclude_return: str) -> tuple[int, str, str] | None:
        """(distance, return id, photo id) of the closest photo of another return."""
        with self._lock:
            others = self._others(exclude_return)
            if not hashes or others.size == 0:
                return None
            query = np.asarray(hashes, dtype=np.uint64)
            dist = np.bitwise_count(self._hashes[others][None, :] ^ query[:, None]).min(axis=0)
            at = int(dist.argmin())
            best = int(others[at])
            return int(dist[at]), self._return_ids[int(self._returns[best])], self._photo_ids[best]
