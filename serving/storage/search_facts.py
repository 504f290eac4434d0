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

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from serving.storage.tables import CatalogItem, Decision, Inspection, OrderLine, Return, ReturnFlag


def refresh(s: Session, ret: Return) -> None:
    """Recompute ``ret``'s search facts from its order line, item, latest decision and
    latest inspection (flushes first, so rows added in this transaction count)."""
    s.flush()
    ret.price = s.scalar(
        select(OrderLine.price).where(OrderLine.order_id == ret.order_id, OrderLine.sku == ret.sku)
    )
    ret.category = s.scalar(select(CatalogItem.category).where(CatalogItem.sku == ret.sku))
    latest = s.scalars(
        select(Decision)
        .where(Decision.return_id == ret.id)
        .order_by(Decision.sequence.desc())
        .limit(1)
    ).first()
    ret.latest_outcome = latest.outcome if latest is not None else None
    ret.latest_grade = latest.grade if latest is not None else None
    ret.latest_channel = s.scalar(
        select(Inspection.channel)
        .where(Inspection.return_id == ret.id)
        .order_by(Inspection.created_at.desc(), Inspection.id.desc())
        .limit(1)
    )
    codes = sorted({str(f["code"]) for f in (latest.flags if latest is not None else [])})
    s.execute(delete(ReturnFlag).where(ReturnFlag.return_id == ret.id))
    s.add_all(ReturnFlag(return_id=ret.id, code=code) for code in codes)


def refresh_id(s: Session, return_id: str | None) -> None:
    """``refresh`` by id (an inspection of an unknown return changes nothing)."""
    if return_id is None:
        return
    ret = s.get(Return, return_id)
    if ret is not None:
        refresh(s, ret)
