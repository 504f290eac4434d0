"""Admin: the shadow-mode report (``serving.services.shadow``).

``GET /v1/admin/shadow`` compares the challenger's stored predictions with the champion's
decisions and the reviewers' verdicts; ``queue`` is the answering worker's runner (its
pending and skipped counts since start-up), absent when this process runs no shadow.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from serving.api.deps import ADMIN, ServiceDep
from serving.api.schemas import V1
from serving.errors import error_responses
from serving.services import shadow
from serving.services.fields import UtcDatetime

router = APIRouter(prefix=f"{V1}/admin", tags=["admin"])


@router.get(
    "/shadow",
    response_model=shadow.ShadowReportOut,
    responses=error_responses(401, 403, 422, 429),
    dependencies=[ADMIN],
    summary="Shadow mode: the challenger against the champion and the reviewers",
)
def shadow_report(
    svc: ServiceDep,
    since: Annotated[UtcDatetime | None, Query(description="ISO time (UTC)")] = None,
    limit: Annotated[int, Query(ge=0, le=1000, description="disagreements listed")] = 50,
) -> shadow.ShadowReportOut:
    report = shadow.shadow_report(svc.db, since=since, limit=limit)
    if svc.shadow is not None:
        report.queue = svc.shadow.status()
    return report
