"""Add ``api_keys.last_used_at`` and the shopper upload's idempotency key on
``decisions``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09

``api_keys.last_used_at``: when a key last authenticated a request (to the minute), for
the key listing (``GET /v1/admin/api-keys``, ``returnlens keys list``). NULL: never
used since this revision.

``decisions.idempotency_key`` and ``decisions.request_fingerprint``: a shopper upload
may carry an ``Idempotency-Key``; a retry with the same key and the same photos is
answered with the decision it produced instead of a 409. Unique per return (a unique
index, which SQLite creates in place; NULL keys never collide). Earlier decisions had
no key: NULL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("last_used_at", sa.DateTime(timezone=True)))
    op.add_column("decisions", sa.Column("idempotency_key", sa.String(length=200)))
    op.add_column("decisions", sa.Column("request_fingerprint", sa.String(length=64)))
    op.create_index(
        "ix_decisions_idempotency", "decisions", ["return_id", "idempotency_key"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_decisions_idempotency", table_name="decisions")
    op.drop_column("decisions", "request_fingerprint")
    op.drop_column("decisions", "idempotency_key")
    op.drop_column("api_keys", "last_used_at")
