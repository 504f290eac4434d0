"""The in-memory reused-photo hash index against real databases (SQLite and PostgreSQL).

Its answers must equal a brute-force scan of the stored rows however the rows arrive:
written by another worker after the last top-up, committed late with an older stamp,
stamped far in the past (a clock that went backwards).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlalchemy.orm import Session

from serving.services.phash_index import WINDOW, PhashIndex, Row
from serving.storage.db import Database
from serving.storage.tables import Photo, Return
from tests.conftest import ORDER_AT as T0

RETURNS = ("ret_a", "ret_b", "ret_c")


@pytest.fixture
def db(order_db: Database) -> Database:
    with order_db.write() as s:
        for rid in RETURNS:
            s.add(
                Return(
                    id=rid,
                    order_id="o1",
                    sku="s1",
                    customer_id="c1",
                    reason="defective",
                    status="awaiting_photos",
                    shopper_token_hash="0" * 64,
                    created_at=T0,
                    updated_at=T0,
                )
            )
    return order_db


def _store(db: Database, rows: list[tuple[str, str, int, datetime]], role: str = "shopper") -> None:
    with db.write() as s:
        for pid, rid, value, at in rows:
            sha = hashlib.sha256(pid.encode()).hexdigest()
            s.add(
                Photo(
                    id=pid,
                    role=role,
                    return_id=rid,
                    position=0,
                    digest="d" * 64,
                    upload_sha256=sha,
                    upload_format="jpeg",
                    media_type="image/jpeg",
                    width=8,
                    height=8,
                    original_width=8,
                    original_height=8,
                    phash=f"{value:016x}",
                    quality={},
                    scores={},
                    created_at=at,
                )
            )


def _brute(
    rows: list[tuple[str, str, int, datetime]], hashes: list[int], exclude: str
) -> int | None:
    dists = [(h ^ v).bit_count() for _, rid, v, _ in rows if rid != exclude for h in hashes]
    return min(dists, default=None)


def _nearest(
    db: Database, index: PhashIndex, hashes: list[int], exclude: str
) -> tuple[int, str, str] | None:
    with db.read() as s:
        index.refresh(s)
    return index.nearest(hashes, exclude)


def test_the_index_matches_a_full_scan_as_rows_arrive(db: Database) -> None:
    rng = np.random.default_rng(3)
    index = PhashIndex()
    assert _nearest(db, index, [123], "ret_a") is None  # nothing stored yet
    stored: list[tuple[str, str, int, datetime]] = []
    for batch in range(4):
        new = [
            (
                f"pho_{batch}_{i}",
                RETURNS[int(rng.integers(3))],
                int(rng.integers(0, 2**63, dtype=np.int64)) * 2 + 1,  # high bit set too
                T0 + timedelta(seconds=batch),
            )
            for i in range(25)
        ]
        _store(db, new)
        stored += new
        query = [int(rng.integers(0, 2**63, dtype=np.int64)) for _ in range(3)]
        for exclude in RETURNS:
            hit = _nearest(db, index, query, exclude)
            assert hit is not None
            distance, other_return, photo_id = hit
            assert distance == _brute(stored, query, exclude)
            assert other_return != exclude
            row = next(r for r in stored if r[0] == photo_id)
            assert row[1] == other_return
            assert min((h ^ row[2]).bit_count() for h in query) == distance
        assert len(index) == len(stored)


def test_the_own_return_is_never_a_match_and_other_roles_are_ignored(db: Database) -> None:
    index = PhashIndex()
    _store(db, [("pho_own", "ret_a", 0xFFFF, T0)])
    _store(db, [("pho_dock", "ret_b", 0xFFFF, T0)], role="dock")
    assert _nearest(db, index, [0xFFFF], "ret_a") is None
    _store(db, [("pho_other", "ret_b", 0xFFFE, T0)])
    assert _nearest(db, index, [0xFFFF], "ret_a") == (1, "ret_b", "pho_other")


def test_late_commits_and_a_clock_that_went_back_are_still_found(db: Database) -> None:
    clock = [0.0]
    index = PhashIndex(resync_s=600.0, monotonic=lambda: clock[0])
    _store(db, [("pho_1", "ret_b", 0x0F0F, T0)])
    assert _nearest(db, index, [0], "ret_a") == (8, "ret_b", "pho_1")
    # Committed after the index read T0, but stamped a little earlier (within WINDOW).
    _store(db, [("pho_late", "ret_c", 0x0003, T0 - WINDOW / 2)])
    assert _nearest(db, index, [0], "ret_a") == (2, "ret_c", "pho_late")
    # Stamped long before anything seen: the periodic full reload picks it up.
    _store(db, [("pho_past", "ret_b", 0x0001, T0 - 100 * WINDOW)])
    assert _nearest(db, index, [0], "ret_a") == (2, "ret_c", "pho_late")
    clock[0] = 601.0
    assert _nearest(db, index, [0], "ret_a") == (1, "ret_b", "pho_past")
    assert len(index) == 3


def test_rows_added_after_commit_are_matched_without_a_read(db: Database) -> None:
    index = PhashIndex()
    _store(db, [("pho_1", "ret_b", 0xFF, T0)])
    assert _nearest(db, index, [0xFF], "ret_a") == (0, "ret_b", "pho_1")
    row = ("pho_2", "ret_c", 0xFE, T0 + timedelta(seconds=1))
    _store(db, [row])
    index.add([(row[0], row[1], f"{row[2]:016x}", row[3])])
    assert index.nearest([0xFE], "ret_a") == (0, "ret_c", "pho_2")
    assert _nearest(db, index, [0xFE], "ret_a") == (0, "ret_c", "pho_2")  # no double entry
    assert len(index) == 2


def test_two_processes_each_see_the_others_uploads(db: Database) -> None:
    worker_1, worker_2 = PhashIndex(), PhashIndex()
    _store(db, [("pho_w1", "ret_a", 0b1011, T0)])
    assert _nearest(db, worker_2, [0b1011], "ret_b") == (0, "ret_a", "pho_w1")
    _store(db, [("pho_w2", "ret_b", 0b0111, T0 + timedelta(seconds=1))])
    assert _nearest(db, worker_1, [0b0111], "ret_a") == (0, "ret_b", "pho_w2")
    assert _nearest(db, worker_2, [0b0111], "ret_c") == (0, "ret_b", "pho_w2")


class _ReadCounting(PhashIndex):
    """The real index, recording how many rows each top-up read from the database."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[int] = []

    def _rows_since(self, session: Session, since: datetime | None) -> Sequence[Row]:
        rows = super()._rows_since(session, since)
        self.reads.append(len(rows))
        return rows


def _spread(
    prefix: str, n: int, start: datetime, step: timedelta
) -> list[tuple[str, str, int, datetime]]:
    return [(f"{prefix}_{i}", RETURNS[i % 3], 0xF0F0_0000 + i, start + i * step) for i in range(n)]


def test_another_workers_newest_rows_are_read_without_the_whole_window(db: Database) -> None:
    """Two workers: each upload finds the other's newest rows missing. Only the last
    seconds are read, not the whole window (it used to read every row of the last
    minute on nearly every upload)."""
    index = _ReadCounting()
    earlier = _spread("pho_w", 120, T0, timedelta(milliseconds=490))  # ~59 s of rows
    _store(db, earlier)
    assert _nearest(db, index, [0], "ret_a") is not None
    assert index.reads == [120]  # the first top-up reads everything
    newest = earlier[-1][3]
    theirs = [
        ("pho_x1", "ret_b", 0x1, newest + timedelta(milliseconds=300)),
        ("pho_x2", "ret_c", 0x3, newest - timedelta(milliseconds=200)),  # committed late
    ]
    _store(db, theirs)
    assert _nearest(db, index, [0], "ret_a") == (1, "ret_b", "pho_x1")
    assert _nearest(db, index, [0], "ret_b") == (2, "ret_c", "pho_x2")
    # one read, of the 2 new rows and the held rows of the newest second (3 of them)
    assert index.reads[1:] == [5]
    assert len(index) == 122
    assert _nearest(db, index, [0], "ret_c") == (1, "ret_b", "pho_x1")
    assert index.reads[1:] == [5]  # nothing missing: counted, not read


def test_a_late_row_far_behind_the_newest_is_found_with_the_new_ones(db: Database) -> None:
    """Missing rows of very different ages: the read starts early enough for all."""
    index = _ReadCounting()
    earlier = _spread("pho_w", 100, T0, timedelta(milliseconds=500))
    _store(db, earlier)
    assert _nearest(db, index, [0], "ret_a") is not None
    newest = earlier[-1][3]
    late = [
        ("pho_new", "ret_b", 0x7, newest + timedelta(milliseconds=100)),
        ("pho_old", "ret_c", 0x1, newest - timedelta(seconds=10)),  # a slow upload
    ]
    _store(db, late)
    stored = earlier + late
    for exclude in RETURNS:
        hit = _nearest(db, index, [0], exclude)
        assert hit is not None and hit[0] == _brute(stored, [0], exclude)
    assert len(index) == 102
    assert 2 < index.reads[-1] < 102  # from 16 s back: not the whole window
