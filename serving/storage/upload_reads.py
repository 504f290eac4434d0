"""The stored facts a shopper upload starts from, in two prebuilt statements.

Every upload reads its return, order, order line and catalog item, counts its earlier
photos, decisions and retakes, and counts the customer's rejected returns. Through the
ORM that was eight statements (three primary-key gets, two row lists, three counts), each
built, cached and loaded into objects on every upload: about 4 ms of CPU per upload on
2 cores (``benchmarks/stage_cpu.py``). Here the return's row is one statement, joined to
the rest with a scalar subquery per count, built once with bind parameters
(``serving/storage/search_facts.py`` does the same for the decision's write), and read
as plain values. The earlier photos' rows are read only when the count says there are
some. The customer's history is one more prebuilt statement.

They run on the session's connection (``Session.connection().execute``): the rows are
plain values, nothing pending in the session is among them, and the ORM's execution
layer (autoflush, ORM result setup) cost about as much again as the statement itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.orm import Session, aliased

from serving.storage.tables import CatalogItem, Decision, Order, OrderLine, Photo, Return


@dataclass(frozen=True)
class ReturnHeader:
    """One return's row and what its upload needs from the rows around it."""

    status: str
    customer_id: str
    sku: str
    order_id: str
    reason: str
    order_found: bool
    delivered_at: datetime | None
    line_price: float | None  # None: the order has no line for the SKU
    category: str | None  # None: the SKU is not in the catalog
    reference_digest: str | None
    reference_embedding: list[float] | None
    reference_model_version: str | None
    photo_count: int  # the return's shopper photos
    max_sequence: int  # of its decisions (0: none)
    retakes: int  # its decisions whose outcome was a retake
    rejected_returns: int  # the customer's other returns that were rejected


def photos_of(rid: Any) -> Any:
    """The number of shopper photos of return ``rid`` (a scalar subquery)."""
    return (
        select(func.count())
        .select_from(Photo)
        .where(Photo.return_id == rid, Photo.role == "shopper")
        .scalar_subquery()
    )


def max_sequence_of(rid: Any) -> Any:
    """The highest decision sequence of return ``rid`` (a scalar subquery; NULL: none)."""
    return select(func.max(Decision.sequence)).where(Decision.return_id == rid).scalar_subquery()


def _header_statement() -> Any:
    rid: Any = bindparam("rid")
    other = aliased(Return)
    count = func.count()
    return (
        select(
            Return.status,
            Return.customer_id,
            Return.sku,
            Return.order_id,
            Return.reason,
            Order.id,
            Order.delivered_at,
            OrderLine.price,
            CatalogItem.category,
            CatalogItem.reference_digest,
            CatalogItem.reference_embedding,
            CatalogItem.reference_model_version,
            photos_of(rid),
            max_sequence_of(rid),
            select(count)
            .select_from(Decision)
            .where(Decision.return_id == rid, Decision.outcome == "retake")
            .scalar_subquery(),
            select(count)
            .select_from(other)
            .where(
                other.customer_id == Return.customer_id,
                other.status == "rejected",
                other.id != rid,
            )
            .scalar_subquery(),
        )
        .select_from(Return)
        .outerjoin(Order, Order.id == Return.order_id)
        .outerjoin(
            OrderLine, and_(OrderLine.order_id == Return.order_id, OrderLine.sku == Return.sku)
        )
        .outerjoin(CatalogItem, CatalogItem.sku == Return.sku)
        .where(Return.id == rid)
    )


def _history_statement() -> Any:
    return select(Return.created_at).where(
        Return.customer_id == bindparam("cid"),
        Return.created_at >= bindparam("since"),
        Return.id != bindparam("rid"),
        Return.status.not_in(bindparam("not_counted", expanding=True)),
    )


_HEADER = _header_statement()
_HISTORY = _history_statement()
_TOKEN_HASH = select(Return.shopper_token_hash).where(Return.id == bindparam("rid"))


def return_header(s: Session, return_id: str) -> ReturnHeader | None:
    """The return's header, or None when there is no such return."""
    row = s.connection().execute(_HEADER, {"rid": return_id}).first()
    if row is None:
        return None
    (status, customer, sku, order_id, reason, order, delivered, price, category) = row[:9]
    digest, embedding, version, photos, max_seq, retakes, rejected = row[9:]
    return ReturnHeader(
        status=status,
        customer_id=customer,
        sku=sku,
        order_id=order_id,
        reason=reason,
        order_found=order is not None,
        delivered_at=delivered,
        line_price=None if price is None else float(price),
        category=category,
        reference_digest=digest,
        reference_embedding=embedding,
        reference_model_version=version,
        photo_count=int(photos or 0),
        max_sequence=int(max_seq or 0),
        retakes=int(retakes or 0),
        rejected_returns=int(rejected or 0),
    )


def history_times(
    s: Session, customer_id: str, since: datetime, exclude: str, not_counted: tuple[str, ...]
) -> tuple[datetime, ...]:
    """When the customer's returns other than ``exclude`` since ``since`` were made,
    leaving out those in a ``not_counted`` status (``limits.NOT_COUNTED``: the shopper's
    abandoned tries)."""
    params = {"cid": customer_id, "since": since, "rid": exclude}
    return tuple(s.connection().scalars(_HISTORY, {**params, "not_counted": list(not_counted)}))


def shopper_token_hash(s: Session, return_id: str) -> str | None:
    """The stored hash of the return's shopper token; None for an unknown return. Every
    shopper request checks it first, so it reads one column, not the whole row."""
    value = s.connection().execute(_TOKEN_HASH, {"rid": return_id}).scalar_one_or_none()
    return None if value is None else str(value)
