"""Add ``photos.view``: which view of the item a shopper photo shows (guided capture).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

A category policy may ask for views (a phone's front with the screen on, its back, the
box; ``serving.policy.views``). Each uploaded photo may name the view it shows; the
decision counts the views covered by usable photos, and replay reads them back from
here. Earlier photos named no view: NULL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("photos", sa.Column("view", sa.String(length=40), nullable=True))


def downgrade() -> None:
    # SQLite (3.35+) drops a plain column in place; no batch copy of the table is needed.
    op.drop_column("photos", "view")
