"""What an admin sees of the background jobs: ``GET /v1/admin/jobs`` and
``returnlens jobs list`` both list the ``jobs`` rows, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serving.storage import jobs as store
from serving.storage.db import Database

Status = Literal["queued", "running", "retrying", "done", "failed", "interrupted"]


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="the queue's task id; a re-enqueued job keeps it")
    name: str = Field(description="deliver-outbox, expire-returns or export-reviewed")
    args: dict[str, Any]
    status: Status
    attempts: int = Field(description="runs started")
    last_error: str | None = Field(description="the last failure, kept after a success")
    worker: str | None = Field(description="host:pid of the last run's worker")
    enqueued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobListOut(BaseModel):
    jobs: list[JobOut]


def list_jobs(
    db: Database, *, status: str | None = None, name: str | None = None, limit: int = 50
) -> JobListOut:
    with db.read() as s:
        rows = store.list_jobs(s, status=status, name=name, limit=limit)
        return JobListOut(jobs=[JobOut.model_validate(r) for r in rows])
