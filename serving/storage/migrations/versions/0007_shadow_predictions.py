"""Add ``shadow_predictions``: a challenger model's reading of each shopper decision.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Shadow mode (``serving.services.shadow``) grades every new shopper decision's stored
photos with a challenger model off the request path and stores its aggregated scores and
the outcome the policy would have given with them, one row per (decision, challenger
version). ``returnlens shadow report`` and ``GET /v1/admin/shadow`` compare the rows with
the champion's decisions and the reviewers' verdicts. Nothing reads the table on the
shopper's path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "shadow_predictions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("decision_id", sa.String(length=40), nullable=False),
        sa.Column("return_id", sa.String(length=40), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("policy_version", sa.String(length=100), nullable=False),
        sa.Column("grade", sa.String(length=40), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("grade_probs", _json(), nullable=False),
        sa.Column("damage_probs", _json(), nullable=False),
        sa.Column("familiar", sa.Boolean(), nullable=True),
        sa.Column("unfamiliarity", _json(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("flags", _json(), nullable=False),
        sa.Column("photo_ids", _json(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["decisions.id"],
            name=op.f("fk_shadow_predictions_decision_id_decisions"),
        ),
        sa.ForeignKeyConstraint(
            ["return_id"], ["returns.id"], name=op.f("fk_shadow_predictions_return_id_returns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_predictions")),
        sa.UniqueConstraint(
            "decision_id",
            "model_version",
            name=op.f("uq_shadow_predictions_decision_id_model_version"),
        ),
    )
    op.create_index(
        op.f("ix_shadow_predictions_decision_id"), "shadow_predictions", ["decision_id"]
    )
    op.create_index(op.f("ix_shadow_predictions_return_id"), "shadow_predictions", ["return_id"])
    op.create_index(op.f("ix_shadow_predictions_created_at"), "shadow_predictions", ["created_at"])


def downgrade() -> None:
    op.drop_table("shadow_predictions")
