"""The staff search's copies of a return's facts, rewritten where their source changes.

Filtering 100,000 returns by their *latest* decision's outcome, their order line's price
or their latest inspection's channel through joins and ``max(sequence)`` subqueries
costs a scan per page; copied onto the ``returns`` row (``price``, ``category``,
``latest_outcome``, ``latest_grade``, ``latest_channel``) and into ``return_flags``,
every filter is one index lookup (``serving.services.return_search``). ``refresh``
recomputes all of them from the source rows, so each writer (return created, decision
stored, inspection stored or re-dispositioned) calls the same function inside its own
transaction and a copy can never be half-updated or drift from a partial rule.
Migration 0011 backfills existing rows with the same rules in SQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.orm import Session

from serving.storage.tables import CatalogItem, Decision, Inspection, OrderLine, Return, ReturnFlag


def _facts_statements() -> tuple[Any, Any]:
    """Every source fact of one return in one statement (a scalar subquery each), built
    once: this runs in the transaction of every shopper decision, where four separate
    reads (and the whole latest decision row) cost about a millisecond more. The second
    statement leaves the latest decision out, for a caller that holds it."""
    rid: Any = bindparam("rid")
    oid: Any = bindparam("oid")
    sku: Any = bindparam("sku")
    latest = (
        select(Decision.outcome)
        .where(Decision.return_id == rid)
        .order_by(Decision.sequence.desc())
        .limit(1)
    )
    price = (
        select(OrderLine.price)
        .where(OrderLine.order_id == oid, OrderLine.sku == sku)
        .scalar_subquery()
    )
    category = select(CatalogItem.category).where(CatalogItem.sku == sku).scalar_subquery()
    channel = (
        select(Inspection.channel)
        .where(Inspection.return_id == rid)
        .order_by(Inspection.created_at.desc(), Inspection.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    every = select(
        price,
        category,
        latest.scalar_subquery(),
        latest.with_only_columns(Decision.grade).scalar_subquery(),
        latest.with_only_columns(Decision.flags).scalar_subquery(),
        channel,
    )
    return every, select(price, category, channel)


_FACTS, _SOURCE_FACTS = _facts_statements()
_FLAGS: Table = ReturnFlag.__table__  # type: ignore[assignment]
_DELETE_FLAGS = delete(_FLAGS).where(_FLAGS.c.return_id == bindparam("rid"))
_INSERT_FLAG = insert(_FLAGS)


def refresh(s: Session, ret: Return, latest: Decision | None = None) -> None:
    """Recompute ``ret``'s search facts from its order line, item, latest decision and
    latest inspection (the read flushes first, so rows added in this transaction count).

    ``latest``: the decision the caller is adding, the return's newest (the shopper's
    upload holds its row lock; ``serving/storage/upload_writes.py``). Its outcome, grade
    and flags are taken from it, the rest is read as always, and nothing is flushed: the
    upload writes its rows itself. The flag rows are written here, on the connection."""
    params = {"rid": ret.id, "oid": ret.order_id, "sku": ret.sku}
    if latest is None:
        price, category, outcome, grade, flags, channel = s.execute(_FACTS, params).one()
    else:
        # on the connection: none of the rows read here can be pending in this session,
        # so nothing is flushed first (nor passed through the ORM's result machinery)
        price, category, channel = s.connection().execute(_SOURCE_FACTS, params).one()
        outcome, grade, flags = latest.outcome, latest.grade, latest.flags
    ret.price, ret.category, ret.latest_channel = price, category, channel
    ret.latest_outcome, ret.latest_grade = outcome, grade
    codes = sorted({str(f["code"]) for f in (flags or [])})
    # Written now, on the connection: the return's row exists by here (read above, or,
    # for a return created in this transaction, flushed by the read of its facts).
    conn = s.connection()
    conn.execute(_DELETE_FLAGS, {"rid": ret.id})
    if codes:
        conn.execute(_INSERT_FLAG, [{"return_id": ret.id, "code": code} for code in codes])


def refresh_id(s: Session, return_id: str | None) -> None:
    """``refresh`` by id (an inspection of an unknown return changes nothing)."""
    if return_id is None:
        return
    ret = s.get(Return, return_id)
    if ret is not None:
        refresh(s, ret)
