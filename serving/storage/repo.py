"""Queries and inserts the services share, over one SQLAlchemy ``Session``.

Functions here never commit: the caller's ``Database.write()`` block is the transaction,
so photos, grading, decision and audit row land together or not at all. The audit log has
an append function and nothing else; UPDATE/DELETE are refused by the database anyway.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.orm import Session

from serving.domain_errors import NotFound
from serving.storage import deferred
from serving.storage.tables import (
    AuditLog,
    CatalogItem,
    Customer,
    Decision,
    Inspection,
    Order,
    OrderLine,
    Photo,
    PolicyVersion,
    Return,
)


def new_id(prefix: str) -> str:
    """``<prefix>_<24 hex>``: 96 random bits, URL- and QR-safe, not guessable."""
    return f"{prefix}_{secrets.token_hex(12)}"


_INSERT_AUDIT = insert(AuditLog)  # prebuilt; written when the transaction commits


def append_audit(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    payload: dict[str, Any],
) -> None:
    """Add one audit row to the session's transaction, written with its other audit rows
    in one statement just before it commits (``serving.storage.deferred``): through the
    ORM it was an INSERT ... RETURNING id of its own at the next flush (the id had to
    come back to an object nothing reads), on every decision."""
    deferred.insert_later(
        session,
        _INSERT_AUDIT,
        {"at": at, "actor": actor[:120], "action": action, "subject_type": subject_type,
         "subject_id": subject_id, "payload": payload},
    )  # fmt: skip


def audit_rows(session: Session, subject_type: str, subject_id: str) -> Sequence[AuditLog]:
    stmt = (
        select(AuditLog)
        .where(AuditLog.subject_type == subject_type, AuditLog.subject_id == subject_id)
        .order_by(AuditLog.id)
    )
    return session.scalars(stmt).all()


def get_return(session: Session, return_id: str, *, lock: bool = False) -> Return | None:
    """The return row; ``lock`` takes a row lock on PostgreSQL (SELECT ... FOR UPDATE) so
    two uploads to one return serialise (SQLite's BEGIN IMMEDIATE already does)."""
    stmt = select(Return).where(Return.id == return_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def require_return(session: Session, return_id: str, *, lock: bool = False) -> Return:
    """``get_return``, or NotFound (``unknown_return``) when there is no such return."""
    ret = get_return(session, return_id, lock=lock)
    if ret is None:
        raise NotFound(f"There is no return {return_id!r}.", code="unknown_return")
    return ret


def order_line(session: Session, order_id: str, sku: str) -> OrderLine | None:
    return session.get(OrderLine, (order_id, sku))


def get_order(session: Session, order_id: str) -> Order | None:
    return session.get(Order, order_id)


def get_customer(session: Session, customer_id: str) -> Customer | None:
    return session.get(Customer, customer_id)


def get_catalog_item(session: Session, sku: str) -> CatalogItem | None:
    return session.get(CatalogItem, sku)


def return_photos(session: Session, return_id: str) -> Sequence[Photo]:
    stmt = (
        select(Photo)
        .where(Photo.return_id == return_id, Photo.role == "shopper")
        .order_by(Photo.position)
    )
    return session.scalars(stmt).all()


def return_decisions(session: Session, return_id: str) -> Sequence[Decision]:
    stmt = select(Decision).where(Decision.return_id == return_id).order_by(Decision.sequence)
    return session.scalars(stmt).all()


def latest_decision(session: Session, return_id: str) -> Decision | None:
    stmt = (
        select(Decision)
        .where(Decision.return_id == return_id)
        .order_by(Decision.sequence.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def customer_returns_since(
    session: Session, customer_id: str, since: datetime, exclude_return_id: str
) -> Sequence[Return]:
    stmt = select(Return).where(
        Return.customer_id == customer_id,
        Return.created_at >= since,
        Return.id != exclude_return_id,
    )
    return session.scalars(stmt).all()


def customer_rejected_count(session: Session, customer_id: str, exclude_return_id: str) -> int:
    value = session.scalar(
        select(func.count())
        .select_from(Return)
        .where(
            Return.customer_id == customer_id,
            Return.status == "rejected",
            Return.id != exclude_return_id,
        )
    )
    return int(value or 0)


def shopper_phashes_since(
    session: Session, since: datetime | None
) -> Sequence[tuple[str, str, str, datetime]]:
    """(photo id, return id, phash hex, created at) of shopper photos created at or after
    ``since`` (all of them for None); served by the (role, created_at) index."""
    stmt = select(Photo.id, Photo.return_id, Photo.phash, Photo.created_at).where(
        Photo.role == "shopper"
    )
    if since is not None:
        stmt = stmt.where(Photo.created_at >= since)
    return [(r[0], r[1] or "", r[2], r[3]) for r in session.execute(stmt).all()]


def _shopper_photo_count_statement() -> Any:
    return (
        select(func.count())
        .select_from(Photo)
        .where(Photo.role == "shopper", Photo.created_at >= bindparam("since"))
    )


# Built once: it runs in every upload's read (``serving/services/phash_index.py``).
_SHOPPER_PHOTO_COUNT = _shopper_photo_count_statement()


def shopper_photo_count(session: Session, since: datetime) -> int:
    """Shopper photos created at or after ``since`` (a range count on the index)."""
    return int(session.connection().scalar(_SHOPPER_PHOTO_COUNT, {"since": since}) or 0)


def inspection_by_key(session: Session, key: str) -> Inspection | None:
    return session.scalars(select(Inspection).where(Inspection.idempotency_key == key)).first()


def decision_by_key(session: Session, return_id: str, key: str) -> Decision | None:
    """The decision a shopper upload with this Idempotency-Key produced on this return."""
    stmt = select(Decision).where(Decision.return_id == return_id, Decision.idempotency_key == key)
    return session.scalars(stmt).first()


def photos_by_id(session: Session, photo_ids: Sequence[str]) -> list[Photo]:
    """The photos with these ids, in the order given (unknown ids left out)."""
    rows = {p.id: p for p in session.scalars(select(Photo).where(Photo.id.in_(photo_ids)))}
    return [rows[i] for i in photo_ids if i in rows]


def return_inspected(session: Session, return_id: str) -> bool:
    """Whether a dock inspection was matched to this return."""
    stmt = select(Inspection.id).where(Inspection.return_id == return_id).limit(1)
    return session.scalar(stmt) is not None


def _record_policy_statements() -> dict[str, Any]:
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return {
        "postgresql": pg_insert(PolicyVersion).on_conflict_do_nothing(),
        "sqlite": sqlite_insert(PolicyVersion).on_conflict_do_nothing(),
    }


# Built once, run through the session's connection: every shopper decision records its
# policy, and the ORM's bulk-insert path cost more than the statement itself.
_RECORD_POLICY = _record_policy_statements()


def record_policy_version(
    session: Session, *, version: str, name: str, text: str, now: datetime
) -> None:
    """Insert the policy version's text unless it is there (insert-or-ignore on its
    primary key: two workers or replicas recording the same version never conflict)."""
    values = {"version": version, "name": name, "text": text, "created_at": now}
    connection = session.connection()
    connection.execute(_RECORD_POLICY[connection.dialect.name], values)


def get_policy_version(session: Session, version: str) -> PolicyVersion | None:
    return session.get(PolicyVersion, version)


def decisions_between(
    session: Session, since: datetime, until: datetime | None = None
) -> Sequence[Decision]:
    """Shopper decisions made in [since, until), oldest first."""
    query = select(Decision).where(Decision.created_at >= since)
    if until is not None:
        query = query.where(Decision.created_at < until)
    return session.scalars(query.order_by(Decision.created_at, Decision.id)).all()
