"""The job queue: a huey instance chosen by ``RETURNLENS_JOB_QUEUE``, its tasks, and the
``jobs`` rows written from its signals.

``open_queue(settings, db)`` builds it: ``SqliteHuey`` on a file (the embedded default,
``DATA_DIR/jobs.db``), ``PostgresHuey`` (psycopg 3, the driver the service already
uses) or ``RedisHuey`` (needs the ``redis`` package). ``immediate=True`` runs each job in
the enqueuing thread (huey's immediate mode, in memory): for tests of the handlers and
for one-off commands, never for the worker. Task arguments are plain JSON values (they
are also the row's ``args``), so a job can be re-enqueued from its row alone.

Signals -> row (``serving.storage.jobs``): enqueued -> ``queued``; executing ->
``running`` (attempts + 1, a lease of ``RETURNLENS_JOB_LEASE_S``, the worker's id);
complete -> ``done``; error -> ``retrying`` while retries are left, else ``failed``,
with the error; interrupted (the worker stopped mid-run) -> ``interrupted``. A row that
cannot be written is logged, never raised into the queue: the sweep (``sweep``) puts
the durable work back either way.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huey import signals as hs
from huey.api import Huey, PostgresHuey, RedisHuey, SqliteHuey, Task
from huey.exceptions import ConfigurationError
from sqlalchemy import select

from serving.services.jobs.handlers import HANDLERS, JobContext
from serving.storage import jobs as store
from serving.storage.db import Database
from serving.storage.tables import Return
from vision.errors import ConfigError

if TYPE_CHECKING:
    from serving.settings import Settings

log = logging.getLogger("returnlens.jobs")
JOB_NAMES = tuple(HANDLERS)
QUEUE_NAME = "returnlens"
DONE_KEPT = timedelta(days=14)  # done rows older than this are removed by the sweep


def _worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}"


def _make_huey(url: str, backend: str, immediate: bool) -> Huey:
    common: dict[str, Any] = {"results": False, "utc": True, "immediate": immediate}
    _scheme, _sep, rest = url.partition("://")
    try:
        if backend == "sqlite":
            path = Path(rest[1:] if rest.startswith("/") else rest)
            path.parent.mkdir(parents=True, exist_ok=True)
            return SqliteHuey(QUEUE_NAME, filename=str(path), **common)
        if backend == "postgresql":
            return PostgresHuey(QUEUE_NAME, dsn=f"postgresql://{rest}", **common)
        return RedisHuey(QUEUE_NAME, url=url, **common)
    except ConfigurationError as exc:  # e.g. redis:// without the redis package
        raise ConfigError(f"cannot open the job queue: {exc}", code="invalid_setting") from exc
    except Exception as exc:  # unreachable server, unwritable file
        reason = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise ConfigError(
            f"cannot open the job queue ({backend}): {reason}",
            code="job_queue_unavailable",
        ) from exc


@dataclass(frozen=True)
class QueueState:
    """What ``/readyz`` and ``returnlens jobs list`` report about the queue."""

    backend: str
    reachable: bool
    waiting: int | None  # tasks in the queue and scheduled (retries), None: unreachable
    jobs: dict[str, int] = field(default_factory=dict)  # rows by status

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "reachable": self.reachable,
            "waiting": self.waiting,
            "jobs": self.jobs,
        }


class JobQueue:
    """The queue, its three tasks and the signal handlers that keep the ``jobs`` rows."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        immediate: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        from serving.settings import job_queue_backend

        url = settings.job_queue_url()
        self.backend = job_queue_backend(url)
        self.settings, self.db, self.clock = settings, db, clock
        self.huey = _make_huey(url, self.backend, immediate)
        self.context = JobContext(db=db, settings=settings, clock=clock)
        self.worker = _worker_id()
        self._tasks = {name: self._register(name, fn) for name, fn in HANDLERS.items()}
        self.huey.signal(hs.SIGNAL_ENQUEUED)(self._on_enqueued)
        self.huey.signal(hs.SIGNAL_EXECUTING)(self._on_executing)
        self.huey.signal(hs.SIGNAL_COMPLETE)(self._on_complete)
        self.huey.signal(hs.SIGNAL_ERROR)(self._on_error)
        self.huey.signal(hs.SIGNAL_INTERRUPTED)(self._on_interrupted)
        self.huey.signal(hs.SIGNAL_CANCELED, hs.SIGNAL_REVOKED, hs.SIGNAL_EXPIRED)(self._on_dropped)

    def _register(self, name: str, fn: Callable[..., dict[str, Any]]) -> Any:
        context = self.context

        def run(**kwargs: Any) -> dict[str, Any]:
            return fn(context, **kwargs)

        run.__module__ = __name__  # the task's registry key: serving.services.jobs.queue.NAME
        return self.huey.task(
            retries=self.settings.job_retries,
            retry_delay=self.settings.job_retry_delay_s,
            name=name,
        )(run)

    # ------------------------------------------------------------------ enqueueing
    def enqueue(self, name: str, job_id: str | None = None, **args: Any) -> str:
        """Add job ``name`` with JSON ``args`` (``job_id``: again under that id); its id."""
        if name not in self._tasks:
            raise ConfigError(
                f"unknown job {name!r}; jobs: {', '.join(JOB_NAMES)}", code="unknown_job"
            )
        plain = json.loads(json.dumps(args))  # JSON values only: the row keeps them
        task: Task = (
            self._tasks[name].s(**plain, id=job_id) if job_id else self._tasks[name].s(**plain)
        )
        self.huey.enqueue(task)
        return str(task.id)

    def nudge(self, name: str, **args: Any) -> str | None:
        """Enqueue ``name`` unless a job of that name is already waiting to start (it will
        see the same durable state); the new job's id, or None."""
        with self.db.read() as s:
            if store.waiting(s, name):
                return None
        return self.enqueue(name, **args)

    def sweep(self) -> list[str]:
        """Enqueue the durable work that is due (module docstring of ``serving.services
        .jobs``); the names enqueued. Safe to run in every worker at once."""
        now = self.clock()
        enqueued: list[str] = []
        with self.db.read() as s:
            outbox_due = _outbox_due(s, now)
            abandoned = _abandoned(s, now, timedelta(hours=self.settings.abandoned_after_hours))
            lost = [(j.id, j.name, dict(j.args)) for j in store.lost(s, now)]
        if outbox_due and self.nudge("deliver-outbox"):
            enqueued.append("deliver-outbox")
        if abandoned and self.nudge("expire-returns"):
            enqueued.append("expire-returns")
        for job_id, name, args in lost:
            if name in self._tasks:
                log.warning("job %s (%s) ended without an outcome; enqueued again", job_id, name)
                self.enqueue(name, job_id=job_id, **args)
                enqueued.append(name)
        with self.db.write() as s:
            store.prune(s, now - DONE_KEPT)
        return enqueued

    # ------------------------------------------------------------------ state
    def state(self) -> QueueState:
        try:
            waiting: int | None = int(self.huey.pending_count()) + int(self.huey.scheduled_count())
        except Exception:  # the queue's server is down: reported, not raised
            waiting = None
        with self.db.read() as s:
            counts = store.counts(s)
        return QueueState(self.backend, waiting is not None, waiting, counts)

    def close(self) -> None:
        try:
            self.huey.storage.close()
        except Exception:  # closing is best effort
            log.debug("closing the job queue failed", exc_info=True)

    # ------------------------------------------------------------------ signals
    def _write(self, what: str, fn: Callable[[Any], None]) -> None:
        try:
            with self.db.write() as s:
                fn(s)
        except Exception:
            log.exception("could not record job %s", what)

    def _on_enqueued(self, _signal: str, task: Task) -> None:
        self._write(
            "enqueued", lambda s: store.enqueued(s, task.id, task.name, task.kwargs, self.clock())
        )

    def _on_executing(self, _signal: str, task: Task) -> None:
        now = self.clock()
        lease = now + timedelta(seconds=self.settings.job_lease_s)

        def record(s: Any) -> None:
            store.started(
                s, task.id, task.name, task.kwargs, now=now, lease_until=lease, worker=self.worker
            )

        self._write("start", record)

    def _on_complete(self, _signal: str, task: Task) -> None:
        self._write(
            "done", lambda s: store.finished(s, task.id, status=store.DONE, now=self.clock())
        )

    def _on_error(self, _signal: str, task: Task, exc: BaseException | None = None) -> None:
        status = store.RETRYING if task.retries else store.FAILED
        error = f"{type(exc).__name__}: {exc}" if exc is not None else "failed"
        self._write(
            "error",
            lambda s: store.finished(s, task.id, status=status, now=self.clock(), error=error),
        )

    def _on_interrupted(self, _signal: str, task: Task) -> None:
        self._write(
            "interruption",
            lambda s: store.finished(
                s,
                task.id,
                status=store.INTERRUPTED,
                now=self.clock(),
                error="interrupted: the worker stopped during the run",
            ),
        )

    def _on_dropped(self, signal: str, task: Task) -> None:
        self._write(
            signal,
            lambda s: store.finished(
                s, task.id, status=store.FAILED, now=self.clock(), error=f"{signal} by the queue"
            ),
        )


def _outbox_due(s: Any, now: datetime) -> bool:
    from serving.storage.outbox import due_exists

    return due_exists(s, now)


def _abandoned(s: Any, now: datetime, after: timedelta) -> bool:
    stmt = select(Return.id).where(
        Return.status == "awaiting_photos", Return.created_at <= now - after
    )
    return s.scalar(stmt.limit(1)) is not None


def open_queue(settings: Settings, db: Database, *, immediate: bool = False) -> JobQueue:
    """The queue ``settings`` name over the application database ``db``."""
    return JobQueue(settings, db, immediate=immediate)


__all__ = ["JOB_NAMES", "JobQueue", "QueueState", "open_queue"]
