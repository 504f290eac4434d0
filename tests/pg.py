"""A throwaway PostgreSQL 15 cluster for tests, plus a ``db_url`` fixture over both DBs.

Import the fixtures into a test module together with the session cluster they use:
``from tests.pg import db_url, pg_cluster, pg_url  # noqa: F401``.

``pg_url`` (session scope) runs ``initdb`` into a temporary folder, starts the server with
``pg_ctl`` listening only on 127.0.0.1 at a free port (unix socket inside the folder,
fsync off: it is a throwaway), creates the database ``returnlens`` and yields
``postgresql+psycopg://postgres@127.0.0.1:PORT/returnlens`` (trust auth on loopback).
At the end it stops the server (``-m immediate``) and deletes the folder. initdb refuses
to run as root, so as root the folder is handed to the ``postgres`` user and the
binaries run through ``runuser``. The tests skip only if the binaries are absent.

``db_url`` is parametrized over sqlite and postgresql: each test gets a fresh, migrated
database (a new SQLite file; on PostgreSQL a copy of a template database migrated once
per session, which is faster than migrating every test's database).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("RETURNLENS_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_pg_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", PG_USER, "--", *cmd]


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(_as_pg_user(cmd), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )


class PgCluster:
    """initdb + pg_ctl start/stop of one private cluster."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="returnlens-pg-"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam(PG_USER)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.data = self.root / "data"
        self.port = _free_port()
        self.started = False
        self.template: str | None = None

    def start(self) -> None:
        _run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                PG_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        with (self.data / "pg_hba.conf").open("w") as fh:  # loopback + socket only
            fh.write("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        opts = (
            f"-F -c listen_addresses=127.0.0.1 -p {self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        _run(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                opts,
                "-w",
                "-t",
                "60",
                "-l",
                str(self.root / "server.log"),
                "start",
            ]
        )
        self.started = True
        self.execute("CREATE DATABASE returnlens")

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
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=PG_USER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]  # test-only DDL, no user input

    def stop(self) -> None:
        try:
            if self.started:
                _run(
                    [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
                )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    if not (PG_BIN / "initdb").is_file() or not (PG_BIN / "pg_ctl").is_file():
        pytest.skip(f"PostgreSQL 15 binaries not found in {PG_BIN}")
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_url(pg_cluster: PgCluster) -> str:
    return pg_cluster.url()


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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, NOT migrated database (for migration tests)."""
    return fresh_database_url(request.param, tmp_path, request, migrated=False)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database migrated to head, on SQLite and on PostgreSQL."""
    return fresh_database_url(request.param, tmp_path, request, migrated=True)
