"""Index photos on (role, created_at) for the in-memory reused-photo hash index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Each upload reads only the shopper photos stored since its worker's last read, instead of
every shopper photo (``serving/services/phash_index.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_photos_role_created_at", "photos", ["role", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_photos_role_created_at", table_name="photos")
