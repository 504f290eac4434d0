"""Rate-limit counters in the application database: a ``limits`` storage backend.

The embedded deployment (several uvicorn workers, or replicas, on one SQLite file or
one PostgreSQL) shares its rate limits through the database it already has, so no new
server is needed. :class:`DatabaseStorage` subclasses ``limits.storage.Storage``
(registered as the scheme ``database``) and supports the sliding-window counter
strategy the service uses (``serving.ratelimit``); fixed windows work too.

Table ``rate_limit_counters``: one row per limit key and window index (the window's
start is ``window * expiry`` seconds after the epoch, as ``limits`` numbers its
windows), the count and the row's expiry (epoch seconds). A hit is one short write
transaction: an atomic upsert ``INSERT ... ON CONFLICT DO UPDATE SET count = count + n
RETURNING count`` of the current window (SQLite >= 3.35 and PostgreSQL), a read of the
previous window's count, and, when the weighted count is over the limit, the increment
taken back. On SQLite the transaction starts with ``BEGIN IMMEDIATE`` (the write lock
first, serving.storage.db), on PostgreSQL the upsert locks the row until commit, so
concurrent hits from any process are serialised per key. Expired rows are deleted in
the same transaction, at most once every ``cleanup_every_s`` per process.

``batch()`` makes the hits of one request (per address, then per credential) share one
transaction. The clock is injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from math import floor
from typing import Any, cast

from limits.storage.base import SlidingWindowCounterSupport, Storage
from sqlalchemy import Connection, Executable, Table, bindparam, case, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from serving.storage.db import Database
from serving.storage.tables import RateLimitCounter

FIXED = -1  # the window index of fixed-window counters (``incr``): they carry their own expiry
_table = cast(Table, RateLimitCounter.__table__)
_c = _table.c


def _upsert_statements(dialect: str) -> tuple[Executable, Executable]:
    """The sliding window's increment and the fixed window's (reset when expired), both
    ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING count``, built once per dialect:
    building a statement costs more than the database does."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    values: dict[str, Any] = {
        "key": bindparam("p_key"),
        "window": bindparam("p_window"),
        "count": bindparam("p_amount"),
        "expires_at": bindparam("p_expires_at"),
    }
    stmt = insert(_table).values(values)
    add = stmt.on_conflict_do_update(
        index_elements=[_c.key, _c.window], set_={"count": _c.count + stmt.excluded.count}
    ).returning(_c.count)
    stmt = insert(_table).values(values)
    expired = _c.expires_at <= bindparam("p_now")
    fixed = stmt.on_conflict_do_update(
        index_elements=[_c.key, _c.window],
        set_={
            "count": case((expired, stmt.excluded.count), else_=_c.count + stmt.excluded.count),
            "expires_at": case((expired, stmt.excluded.expires_at), else_=_c.expires_at),
        },
    ).returning(_c.count)
    return add, fixed


_UPSERTS = {name: _upsert_statements(name) for name in ("sqlite", "postgresql")}
_LIVE = (_c.key == bindparam("p_key"), _c.window == bindparam("p_window"))
_COUNT = select(_c.count).where(*_LIVE, _c.expires_at > bindparam("p_now"))
_EXPIRY = select(_c.expires_at).where(*_LIVE, _c.expires_at > bindparam("p_now"))
_TAKE_BACK = _table.update().where(*_LIVE).values(count=_c.count - bindparam("p_amount"))
_CLEANUP = delete(_table).where(_c.expires_at <= bindparam("p_now"))


class DatabaseStorage(Storage, SlidingWindowCounterSupport):
    """A ``limits`` storage on the service's database (table ``rate_limit_counters``).

    ``database`` is the :class:`Database` or a callable returning it (the app's database
    exists only once its lifespan has built the runtime).
    """

    STORAGE_SCHEME = ["database"]  # noqa: RUF012 (limits declares it a plain list)

    def __init__(
        self,
        uri: str | None = None,
        wrap_exceptions: bool = False,
        *,
        database: Database | Callable[[], Database] | None = None,
        clock: Callable[[], float] = time.time,
        cleanup_every_s: float = 60.0,
        **options: float | str | bool,
    ) -> None:
        if database is None:
            raise ValueError("DatabaseStorage needs database= (the service's Database)")
        self._database = database
        self.clock = clock
        self.cleanup_every_s = cleanup_every_s
        self._next_cleanup = 0.0
        self._local = threading.local()
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    # ------------------------------------------------------------------ transactions
    def _db(self) -> Database:
        return self._database if isinstance(self._database, Database) else self._database()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every call in the block (this thread) runs in one write transaction."""
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        with self._begin() as conn:
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self._begin() as conn:
            yield conn

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        db = self._db()
        # BEGIN IMMEDIATE on SQLite (serving.storage.db): the write lock up front.
        engine = db.engine.execution_options(returnlens_write=True)
        with engine.begin() as conn:
            now = self.clock()
            if now >= self._next_cleanup:
                self._next_cleanup = now + self.cleanup_every_s
                conn.execute(_CLEANUP, {"p_now": now})
            yield conn

    def _upsert(
        self, conn: Connection, key: str, window: int, amount: int, expires_at: float
    ) -> int:
        """Add ``amount`` to the row (created with ``expires_at``); the new count."""
        params = {"p_key": key, "p_window": window, "p_amount": amount, "p_expires_at": expires_at}
        return int(conn.execute(_UPSERTS[conn.dialect.name][0], params).scalar_one())

    def _count(self, conn: Connection, key: str, window: int, now: float) -> int:
        params = {"p_key": key, "p_window": window, "p_now": now}
        return int(conn.execute(_COUNT, params).scalar_one_or_none() or 0)

    # ------------------------------------------------------------- sliding window
    def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        """Take ``amount`` from the window when the weighted count allows it (the rule
        of ``limits``' own storages): previous window's count * its remaining share of
        the window + the current window's count must stay <= ``limit``."""
        if amount > limit:
            return False
        with self._tx() as conn:
            now = self.clock()
            current_window = int(now // expiry)
            current = self._upsert(conn, key, current_window, amount, (current_window + 2) * expiry)
            previous = self._count(conn, key, current_window - 1, now)
            weight = 1.0 - (now / expiry) % 1.0  # the previous window's share still counted
            if floor(previous * weight + current) > limit:
                params = {"p_key": key, "p_window": current_window, "p_amount": amount}
                conn.execute(_TAKE_BACK, params)
                return False
            return True

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        """(previous count, seconds it still counts, current count, seconds until the
        current window's counter expires), as ``limits``' storages answer."""
        with self._tx() as conn:
            now = self.clock()
            current_window = int(now // expiry)
            previous = self._count(conn, key, current_window - 1, now)
            current = self._count(conn, key, current_window, now)
        into_window = (now / expiry) % 1.0
        previous_ttl = (1.0 - into_window) * expiry if previous else 0.0
        current_ttl = (1.0 - into_window) * expiry + expiry
        return previous, previous_ttl, current, current_ttl

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        self.clear(key)

    # ------------------------------------------------------------- fixed window
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """The fixed-window counter: expires ``expiry`` s after its first hit."""
        with self._tx() as conn:
            now = self.clock()
            params = {
                "p_key": key,
                "p_window": FIXED,
                "p_amount": amount,
                "p_expires_at": now + expiry,
            }
            fixed = _UPSERTS[conn.dialect.name][1]
            return int(conn.execute(fixed, {**params, "p_now": now}).scalar_one())

    def get(self, key: str) -> int:
        with self._tx() as conn:
            return self._count(conn, key, FIXED, self.clock())

    def get_expiry(self, key: str) -> float:
        with self._tx() as conn:
            now = self.clock()
            params = {"p_key": key, "p_window": FIXED, "p_now": now}
            found = conn.execute(_EXPIRY, params).scalar_one_or_none()
        return float(found) if found is not None else now

    # ------------------------------------------------------------- housekeeping
    def check(self) -> bool:
        try:
            with self._db().engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except SQLAlchemyError:
            return False

    def clear(self, key: str) -> None:
        with self._tx() as conn:
            conn.execute(delete(_table).where(_table.c.key == key))

    def reset(self) -> int | None:
        with self._tx() as conn:
            rows = int(conn.execute(select(func.count()).select_from(_table)).scalar_one())
            conn.execute(delete(_table))
        return rows

    def rows(self) -> list[dict[str, Any]]:
        """Every stored counter (tests, debugging)."""
        with self._db().engine.connect() as conn:
            result = conn.execute(select(_table).order_by(_table.c.key, _table.c.window))
            return [dict(r._mapping) for r in result]


__all__ = ["FIXED", "DatabaseStorage"]
