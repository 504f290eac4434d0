"""The durable local spool: no inspection is lost while the API is away.

Every inspection is written to SQLite (WAL, ``synchronous=FULL``) *before* any network
call: one row (idempotency key = a uuid4 made when the trigger fired, station, return id,
status) plus its JPEG frames. Statuses:

* ``pending``: not yet acknowledged by the service (also after a station restart);
* ``delivered``: the service answered 2xx (201 created or 200 replay); its JSON is kept;
* ``failed``: the service refused the request itself (a 4xx that retrying cannot fix);
  kept and logged, re-queued with ``requeue_failed()`` (``--retry-failed``);
* ``delivered-local``: standalone mode, graded and decided on the station.

Exactly-once is the server's job (same key -> stored result, 200); the spool's job is
at-least-once: a row only leaves ``pending`` once the service has answered for it.
Frames of delivered rows are dropped (``keep_frames=False``) so the file stays small.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATUSES = ("pending", "delivered", "failed", "delivered-local")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inspections (
    key TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    station_id TEXT NOT NULL,
    return_id TEXT,
    id_source TEXT NOT NULL DEFAULT 'none',
    status TEXT NOT NULL CHECK (status IN ('pending','delivered','failed','delivered-local')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    http_status INTEGER,
    result TEXT,
    meta TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS inspections_status ON inspections (status, created_at);
CREATE TABLE IF NOT EXISTS frames (
    key TEXT NOT NULL REFERENCES inspections (key),
    idx INTEGER NOT NULL,
    jpeg BLOB NOT NULL,
    PRIMARY KEY (key, idx)
);
"""


@dataclass(frozen=True)
class SpoolItem:
    key: str
    station_id: str
    return_id: str | None
    id_source: str
    frames: tuple[bytes, ...]
    created_at: float
    meta: dict[str, Any]
    status: str = "pending"
    attempts: int = 0


class Spool:
    """A thread-safe SQLite spool file (one connection guarded by a lock)."""

    def __init__(
        self, path: str | Path, *, clock: Callable[[], float] = time.time, keep_frames: bool = False
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.keep_frames = keep_frames
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, item: SpoolItem, *, result: dict[str, Any] | None = None) -> None:
        """Store an inspection and its frames in one transaction (idempotent on the key)."""
        now = self.clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO inspections (key, created_at, station_id, return_id,"
                    " id_source, status, result, meta, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        item.key,
                        item.created_at,
                        item.station_id,
                        item.return_id,
                        item.id_source,
                        item.status,
                        json.dumps(result) if result is not None else None,
                        json.dumps(item.meta),
                        now,
                    ),
                )
                if cur.rowcount and (item.status == "pending" or self.keep_frames):
                    self._db.executemany(
                        "INSERT INTO frames (key, idx, jpeg) VALUES (?,?,?)",
                        [(item.key, i, f) for i, f in enumerate(item.frames)],
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def pending(self, limit: int = 16) -> list[SpoolItem]:
        """Oldest pending inspections first, with their frames."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, station_id, return_id, id_source, created_at, meta, status, attempts"
                " FROM inspections WHERE status = 'pending' ORDER BY created_at, key LIMIT ?",
                (limit,),
            ).fetchall()
            return [self._item(row) for row in rows]

    def get(self, key: str) -> SpoolItem | None:
        with self._lock:
            row = self._db.execute(
                "SELECT key, station_id, return_id, id_source, created_at, meta, status, attempts"
                " FROM inspections WHERE key = ?",
                (key,),
            ).fetchone()
            return self._item(row) if row else None

    def _item(self, row: tuple[Any, ...]) -> SpoolItem:
        frames = tuple(
            bytes(f)
            for (f,) in self._db.execute(
                "SELECT jpeg FROM frames WHERE key = ? ORDER BY idx", (row[0],)
            )
        )
        return SpoolItem(
            key=row[0],
            station_id=row[1],
            return_id=row[2],
            id_source=row[3],
            created_at=row[4],
            meta=json.loads(row[5] or "{}"),
            frames=frames,
            status=row[6],
            attempts=row[7],
        )

    def result(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT result FROM inspections WHERE key = ?", (key,)
            ).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def mark_delivered(self, key: str, http_status: int, result: dict[str, Any]) -> None:
        self._finish(key, "delivered", http_status, None, result)

    def mark_failed(self, key: str, http_status: int | None, error: str) -> None:
        self._finish(key, "failed", http_status, error, None)

    def _finish(
        self,
        key: str,
        status: str,
        http_status: int | None,
        error: str | None,
        result: dict[str, Any] | None,
    ) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE inspections SET status = ?, http_status = ?, last_error = ?,"
                " result = COALESCE(?, result), attempts = attempts + 1, updated_at = ?"
                " WHERE key = ? AND status = 'pending'",
                (
                    status,
                    http_status,
                    error,
                    json.dumps(result) if result is not None else None,
                    self.clock(),
                    key,
                ),
            )
            if status == "delivered" and not self.keep_frames:
                self._db.execute("DELETE FROM frames WHERE key = ?", (key,))
            self._db.execute("COMMIT")

    def note_attempt(self, key: str, http_status: int | None, error: str) -> None:
        """A failed try that will be retried: count it, keep the row pending."""
        with self._lock:
            self._db.execute(
                "UPDATE inspections SET attempts = attempts + 1, http_status = ?,"
                " last_error = ?, updated_at = ? WHERE key = ?",
                (http_status, error, self.clock(), key),
            )

    def requeue_failed(self) -> int:
        with self._lock:
            return self._db.execute(
                "UPDATE inspections SET status = 'pending', updated_at = ? WHERE status = 'failed'",
                (self.clock(),),
            ).rowcount

    def counts(self) -> dict[str, int]:
        with self._lock:
            found = dict(
                self._db.execute(
                    "SELECT status, COUNT(*) FROM inspections GROUP BY status"
                ).fetchall()
            )
        return {s: int(found.get(s, 0)) for s in STATUSES}

    def keys(self, status: str | None = None) -> list[str]:
        with self._lock:
            if status is None:
                rows = self._db.execute("SELECT key FROM inspections ORDER BY created_at, key")
            else:
                rows = self._db.execute(
                    "SELECT key FROM inspections WHERE status = ? ORDER BY created_at, key",
                    (status,),
                )
            return [r[0] for r in rows.fetchall()]
