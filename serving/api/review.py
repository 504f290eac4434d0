"""Human review: the queue of flagged returns and inspections, item detail, verdicts.

A verdict (approve, reject, or correct with a grade and damage labels) is stored with
the reviewer's key name and the time; corrected ones become training labels
(``returnlens dataset export-reviewed``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from serving.api.deps import REVIEWER, ReviewerDep, ServiceDep
from serving.api.schemas import V1, ReviewItemOut
from serving.errors import error_responses
from serving.services import dock, review, shopper
from serving.services.fields import QueueSort, SubjectType
from serving.services.inputs import ReviewRequest
from serving.services.outputs import StaffTimelineOut
from serving.services.records import QueueItemOut, ReviewOut
from serving.services.review_stats import ReviewStatsOut
from serving.services.review_stats import review_stats as review_stats_of

router = APIRouter(prefix=f"{V1}/review", tags=["review"])


@router.get(
    "/queue",
    response_model=list[QueueItemOut],
    responses=error_responses(401, 403, 422, 429),
    dependencies=[REVIEWER],
    summary="Returns and inspections waiting for a person",
)
def review_queue(
    svc: ServiceDep,
    sort: QueueSort = "age",
    limit: Annotated[int, Query(ge=1, le=review.MAX_QUEUE)] = 50,
) -> list[QueueItemOut]:
    return review.review_queue(svc, sort=sort, limit=limit)


@router.get(
    "/stats",
    response_model=ReviewStatsOut,
    responses=error_responses(401, 403, 429),
    dependencies=[REVIEWER],
    summary="Reviewer agreement with the model, per grade, with the confusion",
)
def review_stats(svc: ServiceDep) -> ReviewStatsOut:
    return review_stats_of(svc)


@router.get(
    "/returns/{return_id}/timeline",
    response_model=list[StaffTimelineOut],
    responses=error_responses(401, 403, 404, 429),
    dependencies=[REVIEWER],
    summary="A return's status changes, oldest first, with who and why",
)
def return_timeline(return_id: str, svc: ServiceDep) -> list[StaffTimelineOut]:
    return shopper.staff_timeline(svc, return_id)


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class ClosedOut(BaseModel):
    return_id: str
    status: str


@router.post(
    "/returns/{return_id}/close",
    response_model=ClosedOut,
    responses=error_responses(401, 403, 404, 409, 422, 429),
    summary="Close a resolved, rejected or expired return (nothing more will happen)",
)
def close_return(return_id: str, body: CloseIn, svc: ServiceDep, who: ReviewerDep) -> ClosedOut:
    status = review.close_return(svc, return_id, reviewer=who.name, reason=body.reason)
    return ClosedOut(return_id=return_id, status=status)


@router.get(
    "/items/{subject_type}/{subject_id}",
    response_model=ReviewItemOut,
    responses=error_responses(401, 403, 404, 429),
    dependencies=[REVIEWER],
    summary="One queued item with its photos, scores, flags and audit history",
)
def review_item(subject_type: SubjectType, subject_id: str, svc: ServiceDep) -> ReviewItemOut:
    detail: dict[str, object]
    if subject_type == "return":  # NotFound before any audit read
        detail = {"return_detail": shopper.get_return(svc, subject_id)}
    else:
        detail = {"inspection_detail": dock.get_inspection(svc, subject_id)}
    return ReviewItemOut.model_validate(
        {
            "subject_type": subject_type,
            "subject_id": subject_id,
            "audit": review.audit_history(svc, subject_type, subject_id),
            **detail,
        }
    )


@router.post(
    "/verdicts",
    status_code=201,
    response_model=ReviewOut,
    responses=error_responses(401, 403, 404, 409, 422, 429),
    summary="Approve, reject or correct an item; stored as a label",
)
def submit_verdict(body: ReviewRequest, who: ReviewerDep, svc: ServiceDep) -> ReviewOut:
    return review.submit_review(svc, body, reviewer=who.name)
