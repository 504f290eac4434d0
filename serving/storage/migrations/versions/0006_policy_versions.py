"""Add ``policy_versions``: the full text of every policy version, by its hash.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

``policy_versions.version`` is the ``pol-...`` hash stored on every decision and
inspection; ``text`` is the canonical JSON it hashes, so ``returnlens replay`` can rebuild
the exact policy a decision was made with. The service writes a version's row with the
first decision made under it (insert-or-ignore, safe with several workers). Decisions
made before this revision have no row: their replay says the policy text is missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_policy_versions")),
    )


def downgrade() -> None:
    op.drop_table("policy_versions")
