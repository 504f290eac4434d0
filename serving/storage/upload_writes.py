"""The shopper upload's write, as prebuilt Core statements on the session's connection.

Through the ORM's unit of work the write cost about 7 ms of CPU per upload on the 2-core
bench (``benchmarks/stage_cpu.py``), about 0.6 ms of it inside SQLite: the rest was
SQLAlchemy's own Python, loading the return into the identity map and the flush's
bookkeeping for every photo, decision and flag row. The write sits on every upload's
critical path, after the model, the gate and the copy check, so each millisecond of it
is also a millisecond of the shopper's wait. Here:

- the return's row and the counts the upload re-checks are read under the return's lock
  in one statement (two on PostgreSQL: :func:`locked_return`). The row is handed to the
  code the other flows share (``lifecycle.move``, ``resolutions.plan``,
  ``search_facts.refresh``) as a *transient* ``Return``: they read and set its
  attributes as before, and the session never tracks or flushes it;
- its changed columns, the status and the search facts, are written by one UPDATE
  (:func:`update_return`);
- the photo and decision rows are built as ORM objects, for the answer, and inserted by
  :func:`insert_rows` (one statement per table), never added to the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from serving.domain_errors import NotFound
from serving.storage.tables import Base, Return
from serving.storage.upload_reads import max_sequence_of, photos_of

_RETURNS: Table = Return.__table__  # type: ignore[assignment]
# What an upload changes on the return: its status and the search facts.
_CHANGED = ("status", "updated_at", "price", "category", "latest_outcome", "latest_grade",
            "latest_channel")  # fmt: skip


def _locked_statements() -> tuple[Any, Any, Any]:
    """The row with its counts (SQLite), and the row alone and the counts (PostgreSQL)."""
    rid: Any = bindparam("rid")
    counts = (photos_of(rid), max_sequence_of(rid))
    with_counts = select(*_RETURNS.columns, *counts).where(_RETURNS.c.id == rid)
    row = select(*_RETURNS.columns).where(_RETURNS.c.id == rid).with_for_update(of=_RETURNS)
    return with_counts, row, select(*counts)


_WITH_COUNTS, _ROW_FOR_UPDATE, _COUNTS = _locked_statements()
_UPDATE = (
    update(_RETURNS)
    .where(_RETURNS.c.id == bindparam("rid"))
    .values({name: bindparam(name) for name in _CHANGED})
)


def locked_return(s: Session, return_id: str) -> tuple[Return, int, int]:
    """The return (transient: see the module), its shopper photos and its highest
    decision sequence (0: none), read under its row lock; NotFound (``unknown_return``)
    when there is no such return.

    One statement on SQLite, whose ``BEGIN IMMEDIATE`` took the write lock before it.
    Two on PostgreSQL: the row ``FOR UPDATE``, then the counts. In READ COMMITTED a
    statement that waited for a row lock re-reads that row, but the rest of it (the
    counts' subqueries) still reads the snapshot taken before the wait, and would miss
    the upload it waited for."""
    conn = s.connection()
    params = {"rid": return_id}
    row: tuple[Any, ...] | None
    if conn.dialect.name == "sqlite":
        row = conn.execute(_WITH_COUNTS, params).first()
    else:
        row = conn.execute(_ROW_FOR_UPDATE, params).first()
        if row is not None:
            row = (*row, *conn.execute(_COUNTS, params).one())
    if row is None:
        raise NotFound(f"There is no return {return_id!r}.", code="unknown_return")
    n = len(_RETURNS.columns)
    ret = Return(**dict(zip(_RETURNS.columns.keys(), row[:n], strict=True)))
    photos, max_seq = row[n:]
    return ret, int(photos or 0), int(max_seq or 0)


def update_return(s: Session, ret: Return) -> None:
    """Write the upload's changes to ``ret`` (status and search facts)."""
    s.connection().execute(_UPDATE, {"rid": ret.id, **{k: getattr(ret, k) for k in _CHANGED}})


@cache
def _insert_of(cls: type[Base]) -> tuple[Any, tuple[str, ...]]:
    table: Table = cls.__table__  # type: ignore[assignment]
    return insert(table), tuple(table.columns.keys())


def insert_rows(s: Session, rows: Sequence[Base]) -> None:
    """Insert ``rows`` (transient ORM objects of one class, every column set: the
    tables the upload writes have no Python-side defaults) in one statement."""
    if not rows:
        return
    statement, columns = _insert_of(type(rows[0]))
    s.connection().execute(statement, [{c: getattr(r, c) for c in columns} for r in rows])
