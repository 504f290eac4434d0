"""The Alembic migrations and ``serving/storage/tables.py`` describe the same schema.

A fresh database is upgraded to head with the project's own migrations, then Alembic's
autogenerate comparison (``compare_metadata``, types compared too) lists every
difference between that database and the SQLAlchemy metadata: tables, columns, types,
nullability, indexes, unique and foreign-key constraints. The list must be empty, so a
column added to a table without a migration (or the reverse) fails here. Runs on SQLite
and on PostgreSQL 15 (``empty_db_url``; PostgreSQL skips naming what is missing, and
fails under CI=true).
"""

from __future__ import annotations

import pprint
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from serving.storage.db import Database
from serving.storage.tables import Base


def _diff(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_migrations_at_head_match_the_tables(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    try:
        db.upgrade()
    finally:
        db.dispose()
    diff = _diff(empty_db_url)
    assert diff == [], "migrations and serving/storage/tables.py differ:\n" + pprint.pformat(diff)


def test_the_comparison_sees_a_missing_migration(empty_db_url: str) -> None:
    """The check can fail: a database one migration short of head differs."""
    db = Database(empty_db_url)
    try:
        db.upgrade("0001")
    finally:
        db.dispose()
    assert _diff(empty_db_url) != []
