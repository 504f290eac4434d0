"""Admin: background jobs (``serving.services.jobs``). ``GET /v1/admin/jobs`` lists them
newest first with status, attempts and the last error."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from serving.api.deps import ADMIN, ServiceDep
from serving.api.schemas import V1
from serving.errors import error_responses
from serving.services.jobs import admin as jobs

router = APIRouter(prefix=f"{V1}/admin/jobs", tags=["admin"])


@router.get(
    "",
    response_model=jobs.JobListOut,
    responses=error_responses(401, 403, 422, 429),
    dependencies=[ADMIN],
    summary="Background jobs, newest first, with status, attempts and last error",
)
def list_jobs(
    svc: ServiceDep,
    status: Annotated[jobs.Status | None, Query(description="jobs in this state")] = None,
    name: Annotated[str | None, Query(max_length=40, description="e.g. deliver-outbox")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> jobs.JobListOut:
    return jobs.list_jobs(svc.db, status=status, name=name, limit=limit)
