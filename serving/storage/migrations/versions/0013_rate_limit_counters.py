"""Rate limits shared by every worker and replica: ``rate_limit_counters``.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02

The default rate-limit storage (``RETURNLENS_RATE_LIMIT_STORAGE=database``) keeps its
sliding-window counters in the application database
(``serving.storage.ratelimit_store``): one row per limit key and window index, counted
with an atomic upsert. ``ix_rate_limit_counters_expires_at`` serves the clean-up of
expired rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_counters",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("window", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window", name=op.f("pk_rate_limit_counters")),
    )
    op.create_index(
        "ix_rate_limit_counters_expires_at", "rate_limit_counters", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_rate_limit_counters_expires_at", table_name="rate_limit_counters")
    op.drop_table("rate_limit_counters")
