"""Dock stations: grade an arriving item and get its disposition.

Stations retry after network failures, so every inspection carries an idempotency key
(``Idempotency-Key`` header, or the ``idempotency_key`` form field): the same key with
the same photos replays the stored result (200 instead of 201); the same key with other
photos is a 409 ``idempotency_conflict``.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Request, Response

from serving.api.deps import (
    DOCK_OR_REVIEWER,
    AdmissionDep,
    DockDep,
    MetricsDep,
    ServiceDep,
    SettingsDep,
    SlotsDep,
)
from serving.api.schemas import V1
from serving.api.uploads import multipart_body, read_photo_form
from serving.domain_errors import Invalid
from serving.errors import error_responses
from serving.services import dock
from serving.services.inputs import InspectionRequest
from serving.services.records import InspectionOut
from serving.services.routing_label import routing_label

router = APIRouter(prefix=V1, tags=["dock"])
_FORM = multipart_body(
    {
        "return_id": {
            "type": "string",
            "description": "Return id read from the parcel label "
            "(optional: an unmatched item is still graded).",
        },
        "station_id": {
            "type": "string",
            "description": "Camera station name (default: the API key's name).",
        },
        "idempotency_key": {"type": "string", "description": "Alternative to the header."},
    }
)


def _required_key(value: str | None) -> str:
    """Where to send the key is HTTP's business; what a valid key is, the model's."""
    if not value:
        raise Invalid(
            "an idempotency key is required: send the 'Idempotency-Key' header or "
            "the form field 'idempotency_key'",
            code="invalid_field",
            details={"field": "idempotency_key"},
        )
    return value


@router.post(
    "/dock/inspections",
    status_code=201,
    response_model=InspectionOut,
    responses={
        200: {"model": InspectionOut, "description": "Replay of a stored inspection (same key)."},
        **error_responses(401, 403, 409, 413, 415, 422, 429, 503),
    },
    openapi_extra=_FORM,
    summary="Grade an item at the dock and pick its channel",
)
async def create_inspection(
    request: Request,
    response: Response,
    who: DockDep,
    svc: ServiceDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    slots: SlotsDep,
    _admitted: AdmissionDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> InspectionOut:
    form = await read_photo_form(
        request, settings, text_fields=("return_id", "station_id", "idempotency_key")
    )
    req = InspectionRequest(  # a bad field is a 422 naming it (serving/errors.py)
        return_id=form.fields.get("return_id"),
        photos=form.photos,
        idempotency_key=_required_key(idempotency_key or form.fields.get("idempotency_key")),
        station_id=form.fields.get("station_id") or who.name,
    )
    limiter = slots.pick(svc.dock_grader, req.photos)
    out = await anyio.to_thread.run_sync(dock.inspect, svc, req, limiter=limiter)
    if out.replayed:
        response.status_code = 200
    else:
        metrics.record_inspection(out.channel, out.grade, [f.model_dump() for f in out.flags])
    return out


@router.get(
    "/dock/inspections/{inspection_id}/routing-label.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The 4 x 6 in routing label."},
        **error_responses(401, 403, 404, 429),
    },
    dependencies=[DOCK_OR_REVIEWER],
    summary="The inspection's routing label (reprint after a re-disposition)",
)
def get_routing_label(inspection_id: str, svc: ServiceDep) -> Response:
    return Response(
        routing_label(svc, inspection_id),
        media_type="image/png",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )
