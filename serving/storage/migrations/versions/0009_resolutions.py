"""Add ``resolutions``: how each accepted return is settled (refund, credit, exchange).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

``serving.services.resolutions`` plans a row when a return is accepted (by the photo
check or a reviewer) from the category's ``resolution`` rule, and issues it (the
``resolution.issued`` event) at once for an instant refund or keep-it, or when the
parcel is dispositioned. One row per return (``return_id`` is unique).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts() -> sa.types.TypeEngine[Any]:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "resolutions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("return_id", sa.String(length=40), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("timing", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.Numeric(12, 2, asdecimal=False), nullable=False),
        sa.Column("expected_recovery", sa.Numeric(12, 2, asdecimal=False), nullable=True),
        sa.Column("offer", _json(), nullable=False),
        sa.Column("exchange_sku", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("policy_version", sa.String(length=100), nullable=False),
        sa.Column("planned_at", _ts(), nullable=False),
        sa.Column("issued_at", _ts(), nullable=True),
        sa.ForeignKeyConstraint(
            ["return_id"], ["returns.id"], name=op.f("fk_resolutions_return_id_returns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resolutions")),
        sa.UniqueConstraint("return_id", name=op.f("uq_resolutions_return_id")),
    )


def downgrade() -> None:
    op.drop_table("resolutions")
