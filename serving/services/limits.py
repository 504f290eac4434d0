"""Limits on opening returns: no more returns of an order line than were bought, and
abandoned returns expire instead of counting against the shopper.

* Quantity. An order line of quantity ``q`` accepts at most ``q`` returns that are not
  ``expired``. A rejected return still counts: opening a new one must not be a way
  around a rejection. The order line's row is locked while counting (PostgreSQL), so
  two simultaneous requests cannot both take the last unit.
* Abandoned. A return still ``awaiting_photos`` after ``abandoned_after`` (a service
  setting, ``RETURNLENS_ABANDONED_AFTER_HOURS``) moves to ``expired`` through the
  lifecycle, with an audit row by ``system``. Expiry is applied where it matters, when
  the shopper's next request reads the return or the customer opens another one, and in
  bulk by ``returnlens returns expire`` (cron). A return without photos is not a return
  the shopper made: the repeat-returner rule counts only returns with photos
  (``counts_as_return``), expired or not. Opening a new return for a full order line
  expires the line's oldest return still waiting for photos (the shopper's own retry).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.domain_errors import Conflict
from serving.services import lifecycle
from serving.storage.tables import OrderLine, Return

NOT_COUNTED = ("awaiting_photos", "expired")  # for the repeat-returner rule


def counts_as_return(ret: Return) -> bool:
    """Whether a return counts towards the customer's history (it got photos)."""
    return ret.status not in NOT_COUNTED


def is_abandoned(ret: Return, now: datetime, abandoned_after: timedelta) -> bool:
    return ret.status == "awaiting_photos" and ret.created_at + abandoned_after <= now


def expire(s: Session, ret: Return, now: datetime, abandoned_after: timedelta) -> bool:
    """Expire ``ret`` when it is abandoned; whether it was."""
    if not is_abandoned(ret, now, abandoned_after):
        return False
    hours = abandoned_after.total_seconds() / 3600
    lifecycle.move(
        s,
        ret,
        "expired",
        actor="system",
        why=f"no photos within {hours:g} hours",
        now=now,
    )
    return True


def expire_abandoned(
    s: Session, now: datetime, abandoned_after: timedelta, *, customer_id: str | None = None
) -> list[str]:
    """Expire every abandoned return (of one customer, when given); their ids."""
    stmt = select(Return).where(
        Return.status == "awaiting_photos", Return.created_at <= now - abandoned_after
    )
    if customer_id is not None:
        stmt = stmt.where(Return.customer_id == customer_id)
    rows: Sequence[Return] = s.scalars(stmt.with_for_update()).all()
    return [r.id for r in rows if expire(s, r, now, abandoned_after)]


def _line_returns(s: Session, order_id: str, sku: str) -> list[Return]:
    stmt = select(Return).where(
        Return.order_id == order_id, Return.sku == sku, Return.status != "expired"
    )
    return list(s.scalars(stmt.order_by(Return.created_at)).all())


def check_quantity(s: Session, order_id: str, sku: str, now: datetime) -> None:
    """Conflict (``quantity_exceeded``) when every unit of the line is already returned.

    When the line is full, its returns still waiting for their first photo are the
    shopper's own earlier tries (a lost link, a closed tab): the oldest of them expire,
    replaced by the new one, rather than block it.
    """
    line = s.scalars(
        select(OrderLine)
        .where(OrderLine.order_id == order_id, OrderLine.sku == sku)
        .with_for_update()
    ).one()
    active = _line_returns(s, order_id, sku)
    retries = [r for r in active if r.status == "awaiting_photos"]
    while len(active) >= int(line.quantity) and retries:
        oldest = retries.pop(0)
        lifecycle.move(
            s, oldest, "expired", actor="system", why="replaced by a new return", now=now
        )
        active.remove(oldest)
    if len(active) >= int(line.quantity):
        raise Conflict(
            f"All {line.quantity} of {sku!r} on order {order_id!r} already have a return "
            f"({', '.join(r.id for r in active)}); open the existing return instead.",
            code="quantity_exceeded",
            details={"order_id": order_id, "sku": sku, "quantity": int(line.quantity)},
        )
