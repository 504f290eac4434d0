"""The database handle: one engine, two kinds of session, and migrations.

SQLite (the embedded default) needs four things at every connect: WAL, so readers do not
block the writer; ``synchronous=FULL``, so a committed decision is on disk before the
answer leaves; foreign keys, which SQLite ignores unless asked; and a busy timeout,
so a second writer waits instead of failing at once. The sqlite3 driver's own BEGIN
handling is switched off and SQLAlchemy emits BEGIN itself (the recipe in SQLAlchemy's
SQLite docs), so reads are in the transaction too and DDL is transactional. Write
sessions emit ``BEGIN IMMEDIATE``: they take the write lock up front, so two writers that
both read first cannot deadlock into "database is locked" when they upgrade to writing.
PostgreSQL needs none of this.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from vision.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_WRITE_OPTION = "returnlens_write"
# pg_advisory_lock key: two processes starting at once must not both run migrations.
_MIGRATION_LOCK = 0x52455455524E  # "RETURN"


def _sqlite_events(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # WAL + FULL: every commit fsyncs the log before it returns, so a decision the
        # shopper was shown survives a power cut too (NORMAL survives only a crash of the
        # process). One fsync of the WAL per write transaction: I/O wait, no CPU.
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """SQLAlchemy engine + sessions for one database URL."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        busy_timeout_ms: int = 15000,
        session_info: dict[str, Any] | None = None,
    ) -> None:
        """``session_info``: copied into every session's ``info``, for what a writer
        deep in a transaction must know of the deployment (``outbox.events.emit``)."""
        try:
            parsed = make_url(url)
        except Exception as exc:  # ArgumentError for malformed URLs
            raise ConfigError(
                f"invalid database URL {url!r}: {exc}", code="invalid_database_url"
            ) from exc
        self.url = parsed
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"unsupported database {self.dialect!r}; use sqlite:/// or postgresql+psycopg://",
                code="invalid_database_url",
            )
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            db = parsed.database
            if db and db != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            else:  # one shared connection, or every session would see its own empty DB
                kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout_ms / 1000}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = create_engine(parsed, **kwargs)
        if self.dialect == "sqlite":
            _sqlite_events(self.engine, busy_timeout_ms)
        info = dict(session_info or {})
        self._read = sessionmaker(self.engine, expire_on_commit=False, info=info)
        self._write = sessionmaker(
            self.engine.execution_options(**{_WRITE_OPTION: True}),
            expire_on_commit=False,
            info=info,
        )

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work. Closing the session ends its transaction (the pool
        rolls the connection back) and detaches the rows with their loaded values, so
        callers may read attributes after the block; nothing is ever committed here."""
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any exception."""
        with self._write() as session, session.begin():
            yield session

    def upgrade(self, revision: str = "head") -> None:
        """Run the Alembic migrations (shipped as package data) up to ``revision``."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.render_as_string(hide_password=False))
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
                conn.commit()
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
            finally:
                if self.dialect == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})")
                    conn.commit()

    def ping(self) -> bool:
        """True when the database answers ``SELECT 1`` (for readiness probes)."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:  # any driver error means "not ready", never a 500
            return False

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str, *, migrate: bool = True) -> Database:
    """The database for a command-line tool (``returnlens keys``, ``storage gc``),
    migrated to head unless ``migrate`` is False; a database that cannot be reached is
    one sentence (``ConfigError``), not a driver traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    db = Database(url)
    try:
        if migrate:
            db.upgrade()
        else:
            with db.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as exc:
        db.dispose()
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ConfigError(
            f"cannot open the database {db.url.render_as_string()}: {reason}",
            code="database_unavailable",
        ) from exc
    return db
