"""The ``jobs`` table's queries: what became of each background job.

Written from the job queue's signals (``serving.services.jobs.queue``): a row when a job
is enqueued, then running (with a lease), done, retrying, failed or interrupted. Every
write is an upsert keyed by the queue's task id, so a signal whose predecessor was lost
(a best-effort enqueue that could not write, a re-enqueued job) still leaves one row.
This module never commits; the caller's ``db.write()`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from serving.storage.tables import Job

QUEUED, RUNNING, RETRYING, DONE, FAILED, INTERRUPTED = (
    "queued",
    "running",
    "retrying",
    "done",
    "failed",
    "interrupted",
)
STATUSES = (QUEUED, RUNNING, RETRYING, DONE, FAILED, INTERRUPTED)
ERROR_CHARS = 2000  # last_error is a diagnostic, not a log


def _row(s: Session, job_id: str, name: str, args: dict[str, Any], now: datetime) -> Job:
    row = s.get(Job, job_id, with_for_update=True)
    if row is None:
        row = Job(id=job_id, name=name, args=args, status=QUEUED, attempts=0, enqueued_at=now)
        s.add(row)
    return row


def enqueued(s: Session, job_id: str, name: str, args: dict[str, Any], now: datetime) -> None:
    """Queued (again: a re-enqueued job keeps its attempts and last error)."""
    row = _row(s, job_id, name, args, now)
    row.status, row.lease_until, row.finished_at = QUEUED, None, None


def started(
    s: Session,
    job_id: str,
    name: str,
    args: dict[str, Any],
    *,
    now: datetime,
    lease_until: datetime,
    worker: str,
) -> None:
    row = _row(s, job_id, name, args, now)
    row.status, row.attempts, row.worker = RUNNING, row.attempts + 1, worker
    row.started_at, row.lease_until, row.finished_at = now, lease_until, None


def finished(
    s: Session, job_id: str, *, status: str, now: datetime, error: str | None = None
) -> None:
    """Done, failed (no retry left), retrying (another run will come) or interrupted."""
    row = s.get(Job, job_id, with_for_update=True)
    if row is None:  # its enqueue and start went unrecorded: nothing to attach it to
        return
    row.status, row.lease_until = status, None
    if error is not None:
        row.last_error = error[:ERROR_CHARS]
    if status in (DONE, FAILED):
        row.finished_at = now


def lost(s: Session, now: datetime, limit: int = 100) -> Sequence[Job]:
    """Jobs whose run ended without an outcome: running past their lease (the worker
    died) or interrupted (the worker was stopped mid-run)."""
    stmt = (
        select(Job)
        .where(
            or_(
                (Job.status == RUNNING) & (Job.lease_until <= now),
                Job.status == INTERRUPTED,
            )
        )
        .order_by(Job.enqueued_at)
        .limit(limit)
    )
    return s.scalars(stmt).all()


def list_jobs(
    s: Session, *, status: str | None = None, name: str | None = None, limit: int = 50
) -> Sequence[Job]:
    """Newest first."""
    stmt = select(Job)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    if name is not None:
        stmt = stmt.where(Job.name == name)
    return s.scalars(stmt.order_by(Job.enqueued_at.desc(), Job.id.desc()).limit(limit)).all()


def counts(s: Session) -> dict[str, int]:
    """Jobs by status (only the statuses present)."""
    rows = s.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    return {status: int(n) for status, n in rows}


def waiting(s: Session, name: str) -> bool:
    """Whether a job ``name`` is queued and not started yet."""
    stmt = select(Job.id).where(Job.name == name, Job.status == QUEUED).limit(1)
    return s.scalar(stmt) is not None


def prune(s: Session, before: datetime) -> int:
    """Remove done jobs finished before ``before`` (failed ones stay); how many."""
    result = s.execute(delete(Job).where(Job.status == DONE, Job.finished_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
