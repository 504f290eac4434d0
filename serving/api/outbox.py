"""Admin: the notification outbox (``serving.services.outbox``).

``GET /v1/admin/outbox`` lists events newest first with each channel's delivery state;
``POST /v1/admin/outbox/{event_id}/resend`` makes a channel pending again, due now,
with the same event id (receivers dedupe on it).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from serving.api.deps import ADMIN, AdminDep, ServiceDep
from serving.api.schemas import V1
from serving.errors import error_responses
from serving.services.outbox import admin as outbox
from serving.storage import lengths

router = APIRouter(prefix=f"{V1}/admin/outbox", tags=["admin"])


@router.get(
    "",
    response_model=outbox.OutboxListOut,
    responses=error_responses(401, 403, 422, 429),
    dependencies=[ADMIN],
    summary="Outbox events and each channel's delivery state, newest first",
)
def list_outbox(
    svc: ServiceDep,
    status: Annotated[
        outbox.Status | None, Query(description="events with a channel in this state")
    ] = None,
    type: Annotated[
        str | None, Query(max_length=lengths.EVENT_TYPE, description="e.g. decision.made")
    ] = None,
    return_id: Annotated[str | None, Query(max_length=lengths.ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> outbox.OutboxListOut:
    return outbox.list_outbox(svc.db, status=status, type=type, return_id=return_id, limit=limit)


@router.post(
    "/{event_id}/resend",
    response_model=outbox.OutboxEventOut,
    responses=error_responses(401, 403, 404, 409, 422, 429),
    summary="Send an event again (same id), now",
)
def resend(
    svc: ServiceDep,
    who: AdminDep,
    event_id: Annotated[str, Path(max_length=lengths.ID)],
    channel: Annotated[
        outbox.Channel | None,
        Query(
            description="one channel; default: the webhook, and the e-mail if it has a recipient"
        ),
    ] = None,
) -> outbox.OutboxEventOut:
    return outbox.resend(svc.db, event_id, channel=channel, actor=who.name, now=svc.now())
