"""``serving.storage.upload_writes``: the counts an upload re-checks under the return's
lock are read after the lock, on SQLite and on PostgreSQL.

On PostgreSQL (READ COMMITTED) a statement that waited for a row lock re-reads the locked
row but reads everything else from the snapshot it took before the wait: counts taken in
the locking statement itself would miss the upload it waited for. Here a writer holds the
lock with a new photo not yet committed, a second ``locked_return`` waits for it, and
must count the photo once the first commits.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from sqlalchemy import insert, text

from serving.services import shopper
from serving.services.inputs import CreateReturnRequest
from serving.services.service import ReturnLensService
from serving.storage import upload_writes
from serving.storage.db import Database
from serving.storage.tables import Photo


def _photo(return_id: str) -> dict[str, object]:
    return {
        "id": "pho_waited_for", "role": "shopper", "return_id": return_id, "position": 0,
        "digest": "d" * 64, "upload_sha256": "e" * 64, "upload_format": "JPEG",
        "media_type": "image/jpeg", "width": 64, "height": 48, "original_width": 64,
        "original_height": 48, "phash": "0" * 16, "quality": {}, "scores": {},
        "created_at": datetime.now(UTC),
    }  # fmt: skip


def _wait_until_a_statement_waits_for_a_lock(db: Database, timeout_s: float = 20.0) -> None:
    """PostgreSQL: poll until another backend of this database waits on a lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + timeout_s
    with db.engine.connect() as conn:
        while conn.execute(query).scalar_one() == 0:
            assert time.monotonic() < deadline, "the second writer never waited for the lock"
            conn.rollback()  # a fresh snapshot of pg_stat_activity each time
            time.sleep(0.01)


def test_the_counts_follow_the_lock(svc: ReturnLensService) -> None:
    req = CreateReturnRequest(order_id="o-1", sku="mug-01", reason="changed_mind")
    rid = shopper.create_return(svc, req).return_id
    seen: list[tuple[int, int]] = []

    def second_writer() -> None:
        with svc.db.write() as s:
            _, photos, max_sequence = upload_writes.locked_return(s, rid)
            seen.append((photos, max_sequence))

    with svc.db.write() as first:
        assert upload_writes.locked_return(first, rid)[1:] == (0, 0)
        first.connection().execute(insert(Photo), _photo(rid))
        waiter = threading.Thread(target=second_writer)
        waiter.start()
        if svc.db.dialect == "postgresql":  # SQLite: BEGIN IMMEDIATE waits before reading
            _wait_until_a_statement_waits_for_a_lock(svc.db)
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert seen == [(1, 0)]  # the photo committed while it waited
