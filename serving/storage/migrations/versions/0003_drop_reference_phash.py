"""Drop ``catalog_items.reference_phash``: written on every reference photo, never read.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

The reused-photo check compares shopper photos with each other
(``serving/services/phash_index.py``); a catalog photo is never a shopper's photo, so its
hash had no reader.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite (3.35+) drops a plain column in place; no batch copy of the table is needed.
    op.drop_column("catalog_items", "reference_phash")


def downgrade() -> None:
    op.add_column(
        "catalog_items", sa.Column("reference_phash", sa.String(length=16), nullable=True)
    )
