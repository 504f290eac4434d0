"""Append-only rows a transaction writes in one statement per table, just before it commits.

An upload's decision writes three outbox events (each with its delivery rows) and two
audit rows; one INSERT apiece was five statements more in the write transaction that
holds SQLite's write lock, about 0.1 ms each through SQLAlchemy. Nothing reads these
rows back in the transaction that writes them (the dispatcher and the staff views read
them after the commit), so they wait in the session until ``before_commit`` and go in
as one executemany per statement, in the order they were added: events before their
deliveries, each table's rows in order (the outbox delivers one return's events in
delivery-id order). A rollback drops them with the rest of the transaction.

The listeners are on every ``Session``, as the outbox's wake-up is
(``serving/services/outbox/events.py``): a session holds rows here only once this module
is imported.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, event
from sqlalchemy.orm import Session

_PENDING = "returnlens_deferred_rows"


def insert_later(s: Session, statement: Insert, row: dict[str, Any]) -> None:
    """Insert ``row`` with ``statement`` (a prebuilt ``insert(Table)``) when ``s`` commits."""
    pending: dict[Insert, list[dict[str, Any]]] = s.info.setdefault(_PENDING, {})
    pending.setdefault(statement, []).append(row)


@event.listens_for(Session, "before_commit")
def _write(s: Session) -> None:
    pending: dict[Insert, list[dict[str, Any]]] | None = s.info.pop(_PENDING, None)
    if not pending:
        return
    s.flush()  # ORM rows first: a deferred row may refer to one (a new return's event)
    conn = s.connection()
    for statement, rows in pending.items():
        conn.execute(statement, rows)


@event.listens_for(Session, "after_soft_rollback")
def _drop(s: Session, _previous: Any) -> None:
    s.info.pop(_PENDING, None)
