"""A throwaway PostgreSQL 15 cluster for tests, and fresh databases on SQLite or it.

The fixtures over these (``pg_cluster``, ``pg_url``, ``db_url``, ``empty_db_url``) live in
``tests/conftest.py``.

``PgCluster.start`` starts the same server ``make cluster`` runs
(``serving.cluster.servers.Postgres``: ``initdb`` + ``pg_ctl``, 127.0.0.1 only, run as
the ``postgres`` user when the suite runs as root) in a temporary folder at a free port,
fsync off (a throwaway), with the database ``returnlens``; ``url()`` is
``postgresql+psycopg://postgres@127.0.0.1:PORT/returnlens`` (trust auth on loopback).
``stop`` stops it (``-m immediate``) and deletes the folder. Missing binaries skip (fail
under CI=true): ``tests/requires.py``.

``fresh_database_url`` gives each test a fresh database: a new SQLite file, or on
PostgreSQL a copy of a template database migrated once per session (faster than
migrating every test's database).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from serving.cluster.servers import Postgres
from tests.live import free_port


class PgCluster:
    """A throwaway ``serving.cluster.servers.Postgres`` (fsync off) in a temp folder, plus
    per-test databases copied from a template migrated once."""

    def __init__(self) -> None:
        root = Path(tempfile.mkdtemp(prefix="returnlens-pg-"))
        root.chmod(0o755)  # mkdtemp's 0700 would keep the postgres user out
        self.server = Postgres(root / "pg", free_port(), durable=False)
        self.root = root
        self.port = self.server.port
        self.template: str | None = None

    def start(self) -> None:
        self.server.start()

    def create_database(self, *, migrated: bool) -> str:
        """A new database: empty, or a copy of a template migrated once per session
        (copying is faster than migrating each test's database)."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        if not migrated:
            self.execute(f"CREATE DATABASE {name} STRATEGY = FILE_COPY")
            return name
        if self.template is None:
            from serving.storage.db import Database

            self.execute("CREATE DATABASE rl_template STRATEGY = FILE_COPY")
            db = Database(self.url("rl_template"))
            try:
                db.upgrade()
            finally:
                db.dispose()  # a template must have no open connections
            self.template = "rl_template"
        self.execute(f"CREATE DATABASE {name} TEMPLATE {self.template} STRATEGY = FILE_COPY")
        return name

    def url(self, database: str = "returnlens") -> str:
        return self.server.url(database)

    def execute(self, sql: str) -> None:
        self.server.execute(sql)

    def stop(self) -> None:
        try:
            self.server.stop(mode="immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def fresh_database_url(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, *, migrated: bool
) -> str:
    """A database of ``kind`` ("sqlite" | "postgresql") for one test."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'returnlens.db'}"
        if migrated:
            from serving.storage.db import Database

            db = Database(url)
            try:
                db.upgrade()
            finally:
                db.dispose()
        return url
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.url(cluster.create_database(migrated=migrated))
