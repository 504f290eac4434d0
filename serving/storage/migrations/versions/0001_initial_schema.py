"""Initial schema: returns, photos, gradings, decisions, inspections, reviews, catalog,
orders, API keys and the append-only audit log (with the triggers that enforce it).

Revision ID: 0001
Revises:
Create Date: 2026-11-23

The table definitions are written out here (not ``metadata.create_all``) so this revision
stays what it was when later revisions change ``tables.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY_MESSAGE = "audit_log is append-only"

_SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END""",
    f"""CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END""",
)
_PG_TRIGGERS = (
    f"""CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}' USING ERRCODE = 'insufficient_privilege';
    END $$""",
    """CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
)


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    statements = _PG_TRIGGERS if dialect == "postgresql" else _SQLITE_TRIGGERS
    for sql in statements:
        op.execute(sql)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("revoked_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys_name")),
    )
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("subject_type", sa.String(length=20), nullable=False),
        sa.Column("subject_id", sa.String(length=200), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_subject"), "audit_log", ["subject_type", "subject_id"])

    op.create_table(
        "catalog_items",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("price", sa.Numeric(precision=12, scale=2, asdecimal=False), nullable=False),
        sa.Column("reference_digest", sa.String(length=64), nullable=True),
        sa.Column("reference_embedding", _json(), nullable=True),
        sa.Column("reference_model_version", sa.String(length=100), nullable=True),
        sa.Column("reference_phash", sa.String(length=16), nullable=True),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_catalog_items")),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_table(
        "gradings",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("subject_type", sa.String(length=20), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("profile", sa.String(length=20), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("grade", sa.String(length=40), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("grade_probs", _json(), nullable=False),
        sa.Column("damage_probs", _json(), nullable=False),
        sa.Column("embedding", _json(), nullable=True),
        sa.Column("photo_ids", _json(), nullable=False),
        sa.Column("usable_photo_ids", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gradings")),
    )
    op.create_index(op.f("ix_gradings_subject"), "gradings", ["subject_type", "subject_id"])

    op.create_table(
        "orders",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("delivered_at", _ts(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_orders_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
    )
    op.create_index(op.f("ix_orders_customer_id"), "orders", ["customer_id"])

    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("price", sa.Numeric(precision=12, scale=2, asdecimal=False), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_lines_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["sku"], ["catalog_items.sku"], name=op.f("fk_order_lines_sku_catalog_items")
        ),
        sa.PrimaryKeyConstraint("order_id", "sku", name=op.f("pk_order_lines")),
    )
    op.create_table(
        "returns",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("shopper_token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_returns_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["order_id", "sku"],
            ["order_lines.order_id", "order_lines.sku"],
            name="fk_returns_order_line",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_returns")),
    )
    op.create_index(op.f("ix_returns_created_at"), "returns", ["created_at"])
    op.create_index(op.f("ix_returns_customer_id"), "returns", ["customer_id"])
    op.create_index(op.f("ix_returns_order_id"), "returns", ["order_id"])
    op.create_index(op.f("ix_returns_status"), "returns", ["status"])

    op.create_table(
        "decisions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("return_id", sa.String(length=40), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("grading_id", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("flags", _json(), nullable=False),
        sa.Column("grade", sa.String(length=40), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("grade_probs", _json(), nullable=False),
        sa.Column("damage_probs", _json(), nullable=False),
        sa.Column("shopper_message", sa.Text(), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("policy_version", sa.String(length=100), nullable=False),
        sa.Column("inputs", _json(), nullable=False),
        sa.Column("photo_ids", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["grading_id"], ["gradings.id"], name=op.f("fk_decisions_grading_id_gradings")
        ),
        sa.ForeignKeyConstraint(
            ["return_id"], ["returns.id"], name=op.f("fk_decisions_return_id_returns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        sa.UniqueConstraint("return_id", "sequence", name=op.f("uq_decisions_return_id_sequence")),
    )
    op.create_index(op.f("ix_decisions_outcome"), "decisions", ["outcome"])
    op.create_index(op.f("ix_decisions_return_id"), "decisions", ["return_id"])

    op.create_table(
        "inspections",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("station_id", sa.String(length=100), nullable=False),
        sa.Column("return_id", sa.String(length=40), nullable=True),
        sa.Column("claimed_return_id", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("grading_id", sa.String(length=40), nullable=False),
        sa.Column("shopper_decision_id", sa.String(length=40), nullable=True),
        sa.Column("shopper_grade", sa.String(length=40), nullable=True),
        sa.Column("grade", sa.String(length=40), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("grade_probs", _json(), nullable=False),
        sa.Column("damage_probs", _json(), nullable=False),
        sa.Column("tier", sa.String(length=40), nullable=True),
        sa.Column("markdown", sa.Float(), nullable=True),
        sa.Column("channel", sa.String(length=40), nullable=True),
        sa.Column("expected_recovery", sa.Float(), nullable=True),
        sa.Column("alternatives", _json(), nullable=False),
        sa.Column("flags", _json(), nullable=False),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("review_status", sa.String(length=20), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("policy_version", sa.String(length=100), nullable=False),
        sa.Column("photo_ids", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["grading_id"], ["gradings.id"], name=op.f("fk_inspections_grading_id_gradings")
        ),
        sa.ForeignKeyConstraint(
            ["return_id"], ["returns.id"], name=op.f("fk_inspections_return_id_returns")
        ),
        sa.ForeignKeyConstraint(
            ["shopper_decision_id"],
            ["decisions.id"],
            name=op.f("fk_inspections_shopper_decision_id_decisions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspections")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_inspections_idempotency_key")),
    )
    op.create_index(op.f("ix_inspections_created_at"), "inspections", ["created_at"])
    op.create_index(op.f("ix_inspections_return_id"), "inspections", ["return_id"])
    op.create_index(op.f("ix_inspections_review_status"), "inspections", ["review_status"])

    op.create_table(
        "photos",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("return_id", sa.String(length=40), nullable=True),
        sa.Column("inspection_id", sa.String(length=40), nullable=True),
        sa.Column("sku", sa.String(length=64), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("upload_sha256", sa.String(length=64), nullable=False),
        sa.Column("upload_format", sa.String(length=8), nullable=False),
        sa.Column("media_type", sa.String(length=40), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("original_width", sa.Integer(), nullable=False),
        sa.Column("original_height", sa.Integer(), nullable=False),
        sa.Column("phash", sa.String(length=16), nullable=False),
        sa.Column("quality", _json(), nullable=False),
        sa.Column("scores", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inspection_id"], ["inspections.id"], name=op.f("fk_photos_inspection_id_inspections")
        ),
        sa.ForeignKeyConstraint(
            ["return_id"], ["returns.id"], name=op.f("fk_photos_return_id_returns")
        ),
        sa.ForeignKeyConstraint(
            ["sku"], ["catalog_items.sku"], name=op.f("fk_photos_sku_catalog_items")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photos")),
        sa.UniqueConstraint(
            "return_id", "upload_sha256", name=op.f("uq_photos_return_id_upload_sha256")
        ),
    )
    op.create_index(op.f("ix_photos_digest"), "photos", ["digest"])
    op.create_index(op.f("ix_photos_inspection_id"), "photos", ["inspection_id"])
    op.create_index(op.f("ix_photos_return_id"), "photos", ["return_id"])
    op.create_index(op.f("ix_photos_role"), "photos", ["role"])

    op.create_table(
        "reviews",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("subject_type", sa.String(length=20), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("return_id", sa.String(length=40), nullable=True),
        sa.Column("inspection_id", sa.String(length=40), nullable=True),
        sa.Column("reviewer", sa.String(length=100), nullable=False),
        sa.Column("verdict", sa.String(length=20), nullable=False),
        sa.Column("grade", sa.String(length=40), nullable=True),
        sa.Column("damage", _json(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("model_version", sa.String(length=100), nullable=True),
        sa.Column("photo_ids", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inspection_id"], ["inspections.id"], name=op.f("fk_reviews_inspection_id_inspections")
        ),
        sa.ForeignKeyConstraint(
            ["return_id"], ["returns.id"], name=op.f("fk_reviews_return_id_returns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index(op.f("ix_reviews_created_at"), "reviews", ["created_at"])
    op.create_index(op.f("ix_reviews_inspection_id"), "reviews", ["inspection_id"])
    op.create_index(op.f("ix_reviews_return_id"), "reviews", ["return_id"])
    _append_only_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER audit_log_no_update_delete ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER audit_log_no_update")
        op.execute("DROP TRIGGER audit_log_no_delete")
    op.drop_index(op.f("ix_reviews_return_id"), table_name="reviews")
    op.drop_index(op.f("ix_reviews_inspection_id"), table_name="reviews")
    op.drop_index(op.f("ix_reviews_created_at"), table_name="reviews")

    op.drop_table("reviews")
    op.drop_index(op.f("ix_photos_role"), table_name="photos")
    op.drop_index(op.f("ix_photos_return_id"), table_name="photos")
    op.drop_index(op.f("ix_photos_inspection_id"), table_name="photos")
    op.drop_index(op.f("ix_photos_digest"), table_name="photos")

    op.drop_table("photos")
    op.drop_index(op.f("ix_inspections_review_status"), table_name="inspections")
    op.drop_index(op.f("ix_inspections_return_id"), table_name="inspections")
    op.drop_index(op.f("ix_inspections_created_at"), table_name="inspections")

    op.drop_table("inspections")
    op.drop_index(op.f("ix_decisions_return_id"), table_name="decisions")
    op.drop_index(op.f("ix_decisions_outcome"), table_name="decisions")

    op.drop_table("decisions")
    op.drop_index(op.f("ix_returns_status"), table_name="returns")
    op.drop_index(op.f("ix_returns_order_id"), table_name="returns")
    op.drop_index(op.f("ix_returns_customer_id"), table_name="returns")
    op.drop_index(op.f("ix_returns_created_at"), table_name="returns")

    op.drop_table("returns")
    op.drop_table("order_lines")
    op.drop_index(op.f("ix_orders_customer_id"), table_name="orders")

    op.drop_table("orders")
    op.drop_index(op.f("ix_gradings_subject"), table_name="gradings")

    op.drop_table("gradings")
    op.drop_table("customers")
    op.drop_table("catalog_items")
    op.drop_index(op.f("ix_audit_log_subject"), table_name="audit_log")

    op.drop_table("audit_log")
    op.drop_table("api_keys")
