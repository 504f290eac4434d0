"""Add ``inspections.similarity`` and ``inspections.familiar``: what the dock checked
before routing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

The dock now checks the item against the SKU's catalog reference photo (the wrong-item
check) and whether the model knows such photos (its unfamiliarity score) before it
routes anything; a wrong item or an unfamiliar photo is held for review instead. Both
facts are stored with the inspection so a reviewer sees why. Earlier inspections were
never checked: NULL for both.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("inspections", sa.Column("similarity", sa.Float(), nullable=True))
    op.add_column("inspections", sa.Column("familiar", sa.Boolean(), nullable=True))


def downgrade() -> None:
    # SQLite (3.35+) drops a plain column in place; no batch copy of the table is needed.
    op.drop_column("inspections", "familiar")
    op.drop_column("inspections", "similarity")
