"""Storage on SQLite AND a real throwaway PostgreSQL 15 cluster (tests/pg.py)."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from serving import storage as storage_pkg
from serving.domain_errors import NotFound
from serving.storage import repo
from serving.storage.db import Database
from serving.storage.photostore import PhotoStore
from serving.storage.tables import AuditLog, Customer, Return
from tests.pg import PgCluster
from vision.errors import ConfigError

TABLES = {
    "customers",
    "catalog_items",
    "orders",
    "order_lines",
    "returns",
    "photos",
    "gradings",
    "decisions",
    "inspections",
    "reviews",
    "api_keys",
    "audit_log",
    "policy_versions",
    "shadow_predictions",
    "outbox",
    "outbox_deliveries",
    "resolutions",
}
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _latest_revision() -> str:
    """The newest migration file's revision (files are numbered 0001_..., 0002_...)."""
    versions = Path(storage_pkg.__file__).parent / "migrations" / "versions"
    return max(p.name[:4] for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))


def test_migrations_create_the_schema_and_a_second_upgrade_is_a_no_op(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    try:
        assert db.current_revision() is None
        db.upgrade()
        assert db.current_revision() == _latest_revision()
        names = set(inspect(db.engine).get_table_names())
        assert names >= TABLES
        assert "alembic_version" in names
        uniques = inspect(db.engine).get_unique_constraints("inspections")
        assert any(u["column_names"] == ["idempotency_key"] for u in uniques)
        db.upgrade()  # nothing to do, nothing breaks
        assert db.current_revision() == _latest_revision()
        with db.engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        db.dispose()


def _audit(db: Database) -> None:
    with db.write() as s:
        repo.append_audit(
            s,
            at=T0,
            actor="test",
            action="created",
            subject_type="return",
            subject_id="ret_1",
            payload={"n": 1},
        )


@pytest.mark.parametrize("sql", ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"])
def test_the_audit_log_refuses_update_and_delete_in_the_database(db_url: str, sql: str) -> None:
    db = Database(db_url)
    try:
        _audit(db)
        with pytest.raises(DBAPIError, match="append-only"), db.write() as s:
            s.execute(text(sql))
        with db.read() as s:
            rows = s.scalars(select(AuditLog)).all()
            assert [(r.actor, r.payload) for r in rows] == [("test", {"n": 1})]
    finally:
        db.dispose()


def test_the_audit_log_refuses_truncate_on_postgresql(pg_cluster: PgCluster) -> None:
    db = Database(pg_cluster.url(pg_cluster.create_database(migrated=True)))
    try:
        _audit(db)
        with pytest.raises(DBAPIError, match="append-only"), db.write() as s:
            s.execute(text("TRUNCATE audit_log"))
        with db.read() as s:
            assert s.scalar(select(func.count()).select_from(AuditLog)) == 1
    finally:
        db.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    db = Database(f"sqlite:///{path}")
    try:
        db.upgrade()
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert (conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 1000
            # FULL (2): each commit is fsynced, durable across a power cut, not only a crash
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    finally:
        db.dispose()
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_foreign_keys_are_enforced(db_url: str) -> None:
    db = Database(db_url)
    try:
        with pytest.raises(IntegrityError), db.write() as s:
            s.add(
                Return(
                    id="ret_x",
                    order_id="no-such-order",
                    sku="no-such-sku",
                    customer_id="nobody",
                    reason="changed_mind",
                    status="awaiting_photos",
                    shopper_token_hash="0" * 64,
                    created_at=T0,
                    updated_at=T0,
                )
            )
    finally:
        db.dispose()


def test_timestamps_come_back_as_aware_utc(db_url: str) -> None:
    db = Database(db_url)
    plus2 = datetime(2026, 3, 10, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    try:
        with db.write() as s:
            s.add(Customer(id="c1", email=None, created_at=plus2))
        with db.read() as s:
            got = s.get(Customer, "c1")
            assert got is not None
            assert got.created_at == T0 and got.created_at.tzinfo == UTC
        with pytest.raises(StatementError, match="naive"), db.write() as s:
            s.add(Customer(id="c2", created_at=datetime(2026, 1, 1)))
    finally:
        db.dispose()


def test_invalid_database_urls_are_config_errors() -> None:
    with pytest.raises(ConfigError) as err:
        Database("mysql://root@localhost/x")
    assert err.value.code == "invalid_database_url"
    with pytest.raises(ConfigError):
        Database("not a url")


def _pattern(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)


def test_photo_store_is_content_addressed_and_atomic(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path / "photos")
    rgb = _pattern(1)
    digest = store.put(rgb)
    path = store.path(digest)
    assert path == tmp_path / "photos" / digest[:2] / f"{digest[2:]}.jpg"
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == digest  # named by the STORED bytes
    assert data[:2] == b"\xff\xd8" and b"Exif" not in data[:64]
    assert store.put(rgb) == digest  # same pixels, same name, no second file
    assert store.put(_pattern(2)) != digest
    files = sorted(p.name for p in (tmp_path / "photos").rglob("*") if p.is_file())
    assert len(files) == 2 and not any(f.startswith(".tmp") for f in files)
    assert store.get(digest) == data


def test_photo_store_refuses_unknown_and_malformed_digests(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path)
    with pytest.raises(NotFound):
        store.get("0" * 64)
    with pytest.raises(NotFound):
        store.path("../../etc/passwd")
    assert not store.exists("f" * 64)
