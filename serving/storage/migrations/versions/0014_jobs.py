"""Add ``jobs``: one row per background job, for ``returnlens jobs list``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02

The job queue (huey, ``serving.services.jobs``) holds only the tasks waiting to run;
this table keeps what became of each (status, attempts, the last error, times), written
from the queue's signals. ``lease_until`` lets the sweep find a job whose worker died
mid-run. ``ix_jobs_status_enqueued_at`` serves the listing and the sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.types.TypeEngine[Any]:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("args", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(length=100), nullable=True),
        sa.Column("enqueued_at", _ts(), nullable=False),
        sa.Column("started_at", _ts(), nullable=True),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.Column("lease_until", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_status_enqueued_at"), "jobs", ["status", "enqueued_at"])


def downgrade() -> None:
    op.drop_table("jobs")
