"""Add the notification outbox: ``outbox`` (events) and ``outbox_deliveries`` (channels).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

``serving.services.outbox.emit`` writes an event and one delivery row per channel
(webhook, e-mail) in the transaction of the change the event reports; the dispatcher
(``serving.services.outbox.dispatch``) claims due rows with a lease, sends them off the
request path and records attempts, backoff and the outcome on the delivery row, so a
restart loses nothing. ``ix_outbox_deliveries_due`` serves the dispatcher's poll.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts() -> sa.types.TypeEngine[Any]:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=60), nullable=False),
        sa.Column("return_id", sa.String(length=40), nullable=True),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(op.f("ix_outbox_type"), "outbox", ["type"])
    op.create_index(op.f("ix_outbox_return_id"), "outbox", ["return_id"])
    op.create_index(op.f("ix_outbox_created_at"), "outbox", ["created_at"])
    op.create_table(
        "outbox_deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _ts(), nullable=False),
        sa.Column("delivered_at", _ts(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", _ts(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["outbox.id"], name=op.f("fk_outbox_deliveries_event_id_outbox")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_deliveries")),
        sa.UniqueConstraint(
            "event_id", "channel", name=op.f("uq_outbox_deliveries_event_id_channel")
        ),
    )
    op.create_index(
        op.f("ix_outbox_deliveries_due"), "outbox_deliveries", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_table("outbox_deliveries")
    op.drop_table("outbox")
