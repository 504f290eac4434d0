"""The outbox's queries: add an event with its deliveries, claim a due delivery, record
the outcome, list and reset. Policy (which channels apply, backoff, what to send) lives
in ``serving.services.outbox``; this module only reads and writes rows and never commits.

Claims are how several dispatchers (threads, worker processes, hosts) share one outbox
without sending anything twice. A claim is one short write transaction that picks the
oldest due delivery nobody holds and writes the claimer's id and a lease
(``claimed_until``) on it. On PostgreSQL the pick is ``SELECT ... FOR UPDATE SKIP
LOCKED``, so two claimers racing for the same row never both get it and neither waits;
SQLite has no row locks, but write sessions start with ``BEGIN IMMEDIATE``
(``serving.storage.db``), so claim transactions run one after another and the second
sees the first's lease. The outcome is written only where ``claimed_by`` is still the
claimer, so a dispatcher that outlived its lease cannot overwrite a newer attempt.

A delivery waits while an older delivery of the same return on the same channel is
still pending (backing off or in flight): a receiver hears about one return in the
order things happened to it, whichever worker sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, insert, or_, select, update
from sqlalchemy.orm import Session, aliased, selectinload

from serving.storage import deferred
from serving.storage.tables import OutboxDelivery, OutboxEvent

PENDING, DELIVERED, FAILED, SKIPPED = "pending", "delivered", "failed", "skipped"
STATUSES = (PENDING, DELIVERED, FAILED, SKIPPED)
ERROR_CHARS = 500  # last_error is a diagnostic, not a log


@dataclass(frozen=True)
class ChannelRow:
    """A delivery row to create with its event: channel, status, e-mail recipient, and
    for a channel skipped from the start the reason (kept as its ``last_error``)."""

    channel: str
    status: str
    recipient: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Claimed:
    """A claimed delivery with what is needed to send it (read in the claim's transaction)."""

    delivery_id: int
    channel: str
    recipient: str | None
    attempts: int
    event_id: str
    type: str
    return_id: str | None
    payload: dict[str, Any]
    created_at: datetime


# Prebuilt inserts, written when the transaction commits (``serving.storage.deferred``):
# through the ORM each delivery was its own INSERT ... RETURNING id at the next flush (its
# id had to come back to an object), about 0.2 ms apiece on every decision; nothing reads
# these rows back in the transaction that writes them.
_INSERT_EVENT = insert(OutboxEvent)
_INSERT_DELIVERY = insert(OutboxDelivery)


def add_event(
    s: Session,
    *,
    event_id: str,
    type: str,
    return_id: str | None,
    payload: dict[str, Any],
    now: datetime,
    channels: Sequence[ChannelRow],
) -> None:
    """Add the event and one delivery per channel to ``s``'s transaction: written with
    the transaction's other events (one statement for the events, one for the
    deliveries) just before it commits."""
    event = {"id": event_id, "type": type, "return_id": return_id, "payload": payload,
             "created_at": now}  # fmt: skip
    deferred.insert_later(s, _INSERT_EVENT, event)
    for c in channels:
        deferred.insert_later(
            s,
            _INSERT_DELIVERY,
            {"event_id": event_id, "channel": c.channel, "status": c.status,
             "recipient": c.recipient, "attempts": 0, "next_attempt_at": now,
             "last_error": c.note},
        )  # fmt: skip


def _due(now: datetime) -> Any:
    """Pending, due, not held by a live lease, and no older pending delivery of the same
    return on the same channel (NULL return ids never match: unordered)."""
    older, older_event = aliased(OutboxDelivery), aliased(OutboxEvent)
    blocked = (
        exists()
        .where(older.event_id == older_event.id)
        .where(older_event.return_id == OutboxEvent.return_id)
        .where(older.channel == OutboxDelivery.channel)
        .where(older.id < OutboxDelivery.id)
        .where(older.status == PENDING)
    )
    return (
        (OutboxDelivery.status == PENDING)
        & (OutboxDelivery.next_attempt_at <= now)
        & or_(OutboxDelivery.claimed_until.is_(None), OutboxDelivery.claimed_until <= now)
        & ~blocked
    )


def due_exists(s: Session, now: datetime) -> bool:
    """Whether anything is due (a read, so an idle poll takes no write lock)."""
    stmt = (
        select(OutboxDelivery.id)
        .join(OutboxEvent, OutboxEvent.id == OutboxDelivery.event_id)
        .where(_due(now))
        .limit(1)
    )
    return s.scalar(stmt) is not None


def claim_next(s: Session, *, now: datetime, until: datetime, worker: str) -> Claimed | None:
    """Claim the oldest due delivery for ``worker`` until ``until`` (None: nothing due)."""
    stmt = (
        select(OutboxDelivery, OutboxEvent)
        .join(OutboxEvent, OutboxEvent.id == OutboxDelivery.event_id)
        .where(_due(now))
        .order_by(OutboxDelivery.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=OutboxDelivery)
    )
    row = s.execute(stmt).first()
    if row is None:
        return None
    d, e = row
    d.claimed_by, d.claimed_until = worker, until
    return Claimed(
        delivery_id=d.id,
        channel=d.channel,
        recipient=d.recipient,
        attempts=d.attempts,
        event_id=e.id,
        type=e.type,
        return_id=e.return_id,
        payload=dict(e.payload),
        created_at=e.created_at,
    )


def finish(
    s: Session,
    delivery_id: int,
    *,
    worker: str,
    status: str,
    attempts: int,
    next_attempt_at: datetime,
    delivered_at: datetime | None = None,
    error: str | None = None,
) -> bool:
    """Record an attempt's outcome and release the claim; False when ``worker`` no longer
    holds it (its lease ran out and another attempt was started or reset meanwhile)."""
    result = s.execute(
        update(OutboxDelivery)
        .where(OutboxDelivery.id == delivery_id, OutboxDelivery.claimed_by == worker)
        .values(
            status=status,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            delivered_at=delivered_at,
            last_error=None if error is None else error[:ERROR_CHARS],
            claimed_by=None,
            claimed_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def get_event(s: Session, event_id: str) -> OutboxEvent | None:
    stmt = (
        select(OutboxEvent)
        .where(OutboxEvent.id == event_id)
        .options(selectinload(OutboxEvent.deliveries))
    )
    return s.scalars(stmt).first()


def list_events(
    s: Session,
    *,
    status: str | None = None,
    type: str | None = None,
    return_id: str | None = None,
    limit: int = 50,
) -> Sequence[OutboxEvent]:
    """Newest first; ``status`` matches an event when any of its channels has it."""
    stmt = select(OutboxEvent).options(selectinload(OutboxEvent.deliveries))
    if status is not None:
        stmt = stmt.where(
            OutboxEvent.id.in_(
                select(OutboxDelivery.event_id).where(OutboxDelivery.status == status)
            )
        )
    if type is not None:
        stmt = stmt.where(OutboxEvent.type == type)
    if return_id is not None:
        stmt = stmt.where(OutboxEvent.return_id == return_id)
    stmt = stmt.order_by(OutboxEvent.created_at.desc(), OutboxEvent.id.desc()).limit(limit)
    return s.scalars(stmt).all()


def reset(s: Session, event_id: str, channel: str, *, now: datetime, recipient: str | None) -> None:
    """Make a channel pending again, due now, with a fresh attempt count (a resend);
    any claim is dropped, so an attempt still in flight cannot record over it."""
    s.execute(
        update(OutboxDelivery)
        .where(OutboxDelivery.event_id == event_id, OutboxDelivery.channel == channel)
        .values(
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            delivered_at=None,
            recipient=recipient,
            claimed_by=None,
            claimed_until=None,
        )
        .execution_options(synchronize_session=False)
    )
