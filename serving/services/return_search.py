"""Staff search over returns: filters, keyset pages and a streamed CSV export.

Design (what keeps a page under 50 ms at 100,000 returns, benchmarks/search_bench.py):

- **Every filter is one indexed column of ``returns``.** The facts that live elsewhere
  (the latest decision's outcome and grade, the latest inspection's channel, the order
  line's price, the item's category) are copied onto the return by
  ``serving.storage.search_facts.refresh`` in the transaction that changes them, and a
  latest decision's flag codes into ``return_flags`` (one row per code). No join and no
  ``max(sequence)`` subquery is evaluated per row.
- **Each equality filter's index ends in (created_at, id)**, the default sort key
  (``serving/storage/tables.py``), so the database walks the filter's index in order and
  stops after ``limit + 1`` rows. Ranges use ``(created_at, id)`` and ``(price, id)``.
- **Keyset pagination, never OFFSET.** The order is ``(sort column, id)``; the next page
  starts after the last row's pair (a row-value comparison both SQLite and PostgreSQL
  answer from the index), so page 500 costs what page 1 costs and equal sort values
  (same price, same second) are neither repeated nor skipped. The cursor is
  ``serving.services.cursor``.
- **The CSV export** walks the same keyset in batches of ``CSV_BATCH`` rows, one short
  read transaction per batch, and yields each batch as text: memory stays one batch
  whatever the range, and no transaction stays open while a slow client reads.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field, computed_field
from sqlalchemy import ColumnElement, Select, literal, select, tuple_
from sqlalchemy.orm import Session

from serving.services import cursor
from serving.services.inputs import ReturnFilter, ReturnQuery
from serving.services.outputs import API_PREFIX, OutputModel
from serving.services.service import ReturnLensService
from serving.storage.tables import Return, ReturnFlag

CSV_BATCH = 500
# Cells a spreadsheet would run as a formula get a leading apostrophe (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ReturnRowOut(OutputModel):
    """One return in the staff list (and one CSV line): its search facts."""

    return_id: str = Field(validation_alias="id")
    created_at: datetime
    status: str
    order_id: str
    sku: str
    category: str | None
    customer_id: str
    reason: str
    price: float | None = Field(description="The order line's paid price.")
    outcome: str | None = Field(
        validation_alias="latest_outcome", description="The latest decision's outcome."
    )
    grade: str | None = Field(
        validation_alias="latest_grade", description="The latest decision's grade."
    )
    flags: list[str] = Field(default_factory=list, description="The latest decision's flags.")
    channel: str | None = Field(
        validation_alias="latest_channel", description="The latest inspection's channel."
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def detail_url(self) -> str:
        return f"{API_PREFIX}/staff/returns/{self.return_id}"


class ReturnPageOut(BaseModel):
    items: list[ReturnRowOut]
    next_cursor: str | None = Field(
        description="Pass as cursor= for the next page; null on the last page."
    )


CSV_COLUMNS = tuple(name for name in ReturnRowOut.model_fields)


def filter_conditions(f: ReturnFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``f`` on ``returns`` (the ops dashboard filters with them too)."""
    where: list[ColumnElement[bool]] = []
    if f.status:
        where.append(Return.status.in_(f.status))
    equal = (
        (Return.latest_outcome, f.outcome),
        (Return.latest_grade, f.grade),
        (Return.reason, f.reason),
        (Return.category, f.category),
        (Return.sku, f.sku),
        (Return.customer_id, f.customer_id),
        (Return.latest_channel, f.channel),
    )
    where.extend(column == value for column, value in equal if value is not None)
    if f.flag is not None:
        flagged = select(ReturnFlag.return_id).where(ReturnFlag.code == f.flag)
        where.append(Return.id.in_(flagged))
    if f.created_from is not None:
        where.append(Return.created_at >= f.created_from)
    if f.created_to is not None:
        where.append(Return.created_at <= f.created_to)
    if f.price_min is not None:
        where.append(Return.price >= _money(f.price_min))
    if f.price_max is not None:
        where.append(Return.price <= _money(f.price_max))
    return where


def _money(value: float) -> Decimal:
    """A price bound as a decimal: psycopg sends a float as float8, and PostgreSQL then
    compares ``numeric`` prices as doubles, which no price index can answer."""
    return Decimal(str(value))


def _statement(f: ReturnFilter, after: cursor.Cursor | None, limit: int) -> Select[Any]:
    """The page after ``after``: ``(sort column, id)`` keyset, no OFFSET."""
    column = Return.price if f.sort.lstrip("-") == "price" else Return.created_at
    descending = f.sort.startswith("-")
    stmt = select(Return).where(*filter_conditions(f))
    if after is not None:
        key = _money(after.key) if isinstance(after.key, float) else after.key
        mark = tuple_(literal(key, column.type), literal(after.id, Return.id.type))
        pair = tuple_(column, Return.id)
        stmt = stmt.where(pair < mark if descending else pair > mark)
    order = (column.desc(), Return.id.desc()) if descending else (column, Return.id)
    return stmt.order_by(*order).limit(limit)


def _rows(s: Session, f: ReturnFilter, after: cursor.Cursor | None, limit: int) -> list[Return]:
    return list(s.scalars(_statement(f, after, limit)))


def _out(s: Session, rows: Sequence[Return]) -> list[ReturnRowOut]:
    """The rows with their flag codes (one indexed lookup for the whole page)."""
    flags: dict[str, list[str]] = {}
    if rows:
        stmt = select(ReturnFlag).where(ReturnFlag.return_id.in_([r.id for r in rows]))
        for flag in s.scalars(stmt.order_by(ReturnFlag.return_id, ReturnFlag.code)):
            flags.setdefault(flag.return_id, []).append(flag.code)
    out = []
    for row in rows:
        item = ReturnRowOut.model_validate(row)
        item.flags = flags.get(row.id, [])
        out.append(item)
    return out


def _key(f: ReturnFilter, row: Return) -> datetime | float | None:
    return row.price if f.sort.lstrip("-") == "price" else row.created_at


def search(svc: ReturnLensService, q: ReturnQuery) -> ReturnPageOut:
    """One page of returns matching ``q`` in its order, and the cursor of the next."""
    after = cursor.decode(q.cursor, q.sort) if q.cursor is not None else None
    with svc.db.read() as s:
        rows = _rows(s, q, after, q.limit + 1)
        items = _out(s, rows[: q.limit])
    next_cursor = None
    if len(rows) > q.limit:
        last = rows[q.limit - 1]
        next_cursor = cursor.encode(q.sort, _key(q, last), last.id)
    return ReturnPageOut(items=items, next_cursor=next_cursor)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_chunks(svc: ReturnLensService, f: ReturnFilter) -> Iterator[str]:
    """Every return matching ``f`` as CSV text (header first), one chunk per batch."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    after: cursor.Cursor | None = None
    while True:
        with svc.db.read() as s:
            rows = _rows(s, f, after, CSV_BATCH)
            items = _out(s, rows)
        for item in items:
            values = item.model_dump(mode="json")
            writer.writerow([_cell(values[c]) for c in CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < CSV_BATCH:
            return
        after = cursor.Cursor(f.sort, _key(f, rows[-1]), rows[-1].id)
