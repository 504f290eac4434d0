"""Human review: the queue of flagged returns and inspections, item detail, verdicts.

A verdict (approve, reject, or correct with a grade and damage labels) is stored with
the reviewer's key name and the time; corrected ones become training labels
(``returnlens dataset export-reviewed``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from serving.api.deps import ReviewerDep, ServiceDep
from serving.api.schemas import (
    V1,
    QueueItemOut,
    ReviewItemOut,
    ReviewOut,
    VerdictIn,
    inspection_out,
    queue_item_out,
    return_out,
    review_out,
)
from serving.errors import error_responses
from serving.services.views import ReviewRequest

router = APIRouter(prefix=f"{V1}/review", tags=["review"])


@router.get(
    "/queue",
    response_model=list[QueueItemOut],
    responses=error_responses(401, 403, 422, 429),
    summary="Returns and inspections waiting for a person",
)
def review_queue(
    who: ReviewerDep,
    svc: ServiceDep,
    sort: Literal["age", "value"] = "age",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[QueueItemOut]:
    del who
    return [queue_item_out(item) for item in svc.review_queue(sort=sort, limit=limit)]


@router.get(
    "/items/{subject_type}/{subject_id}",
    response_model=ReviewItemOut,
    responses=error_responses(401, 403, 404, 429),
    summary="One queued item with its photos, scores, flags and audit history",
)
def review_item(
    subject_type: Literal["return", "inspection"],
    subject_id: str,
    who: ReviewerDep,
    svc: ServiceDep,
) -> ReviewItemOut:
    del who
    if subject_type == "return":
        ret = return_out(svc.get_return(subject_id))  # NotFound before any audit read
        return ReviewItemOut(
            subject_type=subject_type,
            subject_id=subject_id,
            return_detail=ret,
            audit=svc.audit_history(subject_type, subject_id),
        )
    inspection = inspection_out(svc.get_inspection(subject_id))
    return ReviewItemOut(
        subject_type=subject_type,
        subject_id=subject_id,
        inspection_detail=inspection,
        audit=svc.audit_history(subject_type, subject_id),
    )


@router.post(
    "/verdicts",
    status_code=201,
    response_model=ReviewOut,
    responses=error_responses(401, 403, 404, 409, 422, 429),
    summary="Approve, reject or correct an item; stored as a label",
)
def submit_verdict(body: VerdictIn, who: ReviewerDep, svc: ServiceDep) -> ReviewOut:
    view = svc.submit_review(
        ReviewRequest(
            subject_type=body.subject_type,
            subject_id=body.subject_id,
            reviewer=who.name,
            verdict=body.verdict,
            grade=body.grade,
            damage=tuple(body.damage) if body.damage is not None else None,
            note=body.note or None,
        )
    )
    return review_out(view)
