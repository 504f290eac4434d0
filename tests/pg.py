"""A throwaway PostgreSQL 15 cluster for tests, and fresh databases on SQLite or it.

The fixtures over these (``pg_cluster``, ``pg_url``, ``db_url``, ``empty_db_url``) live in
``tests/conftest.py``.

``PgCluster.start`` runs ``initdb`` into a temporary folder, starts the server with
``pg_ctl`` listening only on 127.0.0.1 at a free port (unix socket inside the folder,
fsync off: it is a throwaway) and creates the database ``returnlens``; ``url()`` is
``postgresql+psycopg://postgres@127.0.0.1:PORT/returnlens`` (trust auth on loopback).
``stop`` stops the server (``-m immediate``) and deletes the folder. initdb refuses to run
as root, so as root the folder is handed to the ``postgres`` user and the binaries run
through ``runuser``. Missing binaries skip (fail under CI=true): ``tests/requires.py``.

``fresh_database_url`` gives each test a fresh database: a new SQLite file, or on
PostgreSQL a copy of a template database migrated once per session (faster than
migrating every test's database).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.live import free_port
from tests.requires import PG_BIN

PG_USER = "postgres"


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
        self.port = free_port()
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
