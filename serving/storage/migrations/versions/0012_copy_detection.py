"""Add copy-detection descriptors: ``photos.copy_vector`` / ``copy_features`` and
``catalog_items.reference_copy_vector`` / ``reference_copy_features``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

The reused-photo check keeps the perceptual hash for exact copies and adds a signal that
survives crops, rotation, colour changes, recompression, borders and screenshots
(``vision/copydetect.py``); the catalog-photo check compares uploads with the catalog's
reference photos the same way. Each shopper photo and each reference photo stores its
global vector (held in memory for the candidate search) and its local features (read for
the few candidates verified). Photos stored before this revision have none: NULL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("photos", sa.Column("copy_vector", sa.LargeBinary(), nullable=True))
    op.add_column("photos", sa.Column("copy_features", sa.LargeBinary(), nullable=True))
    op.add_column(
        "catalog_items", sa.Column("reference_copy_vector", sa.LargeBinary(), nullable=True)
    )
    op.add_column(
        "catalog_items", sa.Column("reference_copy_features", sa.LargeBinary(), nullable=True)
    )


def downgrade() -> None:
    # SQLite (3.35+) drops a plain column in place; no batch copy of the table is needed.
    op.drop_column("catalog_items", "reference_copy_features")
    op.drop_column("catalog_items", "reference_copy_vector")
    op.drop_column("photos", "copy_features")
    op.drop_column("photos", "copy_vector")
