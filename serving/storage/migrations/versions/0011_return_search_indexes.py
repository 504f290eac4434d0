"""Staff search: search facts on ``returns``, ``return_flags``, and an index per filter.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

``GET /v1/staff/returns`` filters by the latest decision's outcome, grade and flags, the
latest inspection's channel, the order line's price and the item's category. Those are
copied onto the return (``serving.storage.search_facts``) so each filter has an index
per sort key, (column, created_at, id) and (column, price, id); the single-column
indexes on status, customer_id and created_at, which those lead, are dropped. Existing
returns are backfilled here with the same rules: the order line's paid price, the
catalog category, the highest-sequence decision, the newest inspection (created_at,
then id).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILTER_COLUMNS = (
    "status",
    "latest_outcome",
    "latest_grade",
    "reason",
    "category",
    "sku",
    "customer_id",
    "latest_channel",
)

REPLACED = ("status", "customer_id", "created_at")
BACKFILL = """
UPDATE returns SET
  price = (SELECT l.price FROM order_lines l
           WHERE l.order_id = returns.order_id AND l.sku = returns.sku),
  category = (SELECT c.category FROM catalog_items c WHERE c.sku = returns.sku),
  latest_outcome = (SELECT d.outcome FROM decisions d WHERE d.return_id = returns.id
                    ORDER BY d.sequence DESC LIMIT 1),
  latest_grade = (SELECT d.grade FROM decisions d WHERE d.return_id = returns.id
                  ORDER BY d.sequence DESC LIMIT 1),
  latest_channel = (SELECT i.channel FROM inspections i WHERE i.return_id = returns.id
                    ORDER BY i.created_at DESC, i.id DESC LIMIT 1)
"""
LATEST_FLAGS = """
SELECT d.return_id, d.flags FROM decisions d
WHERE d.sequence = (SELECT max(e.sequence) FROM decisions e WHERE e.return_id = d.return_id)
"""


def upgrade() -> None:
    op.add_column("returns", sa.Column("price", sa.Numeric(12, 2, asdecimal=False)))
    op.add_column("returns", sa.Column("category", sa.String(length=64)))
    op.add_column("returns", sa.Column("latest_outcome", sa.String(length=20)))
    op.add_column("returns", sa.Column("latest_grade", sa.String(length=40)))
    op.add_column("returns", sa.Column("latest_channel", sa.String(length=40)))
    flags = op.create_table(
        "return_flags",
        sa.Column("return_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["return_id"], ["returns.id"], name=op.f("fk_return_flags_return_id_returns")
        ),
        sa.PrimaryKeyConstraint("return_id", "code", name=op.f("pk_return_flags")),
    )
    op.create_index("ix_return_flags_code", "return_flags", ["code", "return_id"])
    op.create_index("ix_returns_search_created", "returns", ["created_at", "id"])
    op.create_index("ix_returns_search_price", "returns", ["price", "id"])
    for column in FILTER_COLUMNS:
        op.create_index(f"ix_returns_search_{column}", "returns", [column, "created_at", "id"])
        op.create_index(f"ix_returns_search_{column}_price", "returns", [column, "price", "id"])
    # Covered by the search indexes they lead; left, they lure SQLite's planner into
    # sorting every matching row instead of walking a search index in order.
    for column in REPLACED:
        op.drop_index(f"ix_returns_{column}", table_name="returns")
    bind = op.get_bind()
    bind.execute(sa.text(BACKFILL))
    rows: list[dict[str, str]] = []
    for return_id, stored in bind.execute(sa.text(LATEST_FLAGS)):
        decoded = json.loads(stored) if isinstance(stored, str) else stored
        codes = sorted({str(f["code"]) for f in decoded or []})
        rows.extend({"return_id": return_id, "code": code} for code in codes)
    if rows:
        op.bulk_insert(flags, rows)


def downgrade() -> None:
    for column in REPLACED:
        op.create_index(f"ix_returns_{column}", "returns", [column])
    for column in FILTER_COLUMNS:
        op.drop_index(f"ix_returns_search_{column}_price", table_name="returns")
        op.drop_index(f"ix_returns_search_{column}", table_name="returns")
    op.drop_index("ix_returns_search_price", table_name="returns")
    op.drop_index("ix_returns_search_created", table_name="returns")
    op.drop_index("ix_return_flags_code", table_name="return_flags")
    op.drop_table("return_flags")
    for column in ("latest_channel", "latest_grade", "latest_outcome", "category", "price"):
        op.drop_column("returns", column)
