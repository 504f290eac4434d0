"""Shopper flow: create a return, upload photos, read the return and its photos.

Creating a return is public but needs the order's customer email as well as the order
id, and answers an unknown order and a wrong email alike (404 ``unknown_order``), so
order ids cannot be probed. The answer carries the shopper token: it opens this one
return and nothing else. Uploads run decode + inference in a worker thread (one batch
per request, bounded by the worker's upload slots: ``serving.api.admission.UploadSlots``),
never on the event loop. An upload may carry an ``Idempotency-Key``: its retry (after a
client timeout) is answered with the stored result instead of a 409
(``shopper.upload_photos``).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request, Response

from serving.api.deps import (
    PHOTO_READER,
    RETURN_OWNER,
    RETURN_READER,
    AdmissionDep,
    MetricsDep,
    ServiceDep,
    SettingsDep,
    SlotsDep,
)
from serving.api.schemas import V1, CreateReturnIn
from serving.api.uploads import multipart_body, read_photo_form
from serving.errors import error_responses
from serving.services import media, shopper
from serving.services.fields import IdempotencyKey
from serving.services.outputs import CreatedReturnOut, ReturnOut, UploadOut
from serving.storage import lengths

router = APIRouter(prefix=V1, tags=["shopper"])
IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/jpeg": {}, "image/png": {}},
        "description": "The stored photo (metadata stripped).",
    }
}
VIEWS_FIELD = "views"
VIEWS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string", "maxLength": 40},
    "description": "Optional, guided capture: the view each photo shows (the return's "
    "`required_views` names), one per photo in the same order; '' for a photo of none.",
}
PNG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "Heatmap overlay (PNG)."}
}


@router.post(
    "/returns",
    status_code=201,
    response_model=CreatedReturnOut,
    responses=error_responses(404, 409, 422, 429),
    summary="Open a return for one item of a delivered order",
)
def create_return(body: CreateReturnIn, svc: ServiceDep) -> CreatedReturnOut:
    return shopper.create_return(svc, body)


@router.post(
    "/returns/{return_id}/photos",
    response_model=UploadOut,
    responses=error_responses(401, 403, 404, 409, 413, 415, 422, 429, 503),
    openapi_extra=multipart_body(extra={VIEWS_FIELD: VIEWS_SCHEMA}),
    dependencies=[RETURN_OWNER],  # only the return's shopper uploads
    summary="Upload 1-6 photos of the item and get the decision",
)
async def upload_photos(
    return_id: str,
    request: Request,
    svc: ServiceDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    slots: SlotsDep,
    _admitted: AdmissionDep,
    idempotency_key: Annotated[
        IdempotencyKey | None,
        Header(
            description="Optional, one per upload attempt: a retry with the same key and "
            "photos (after a timeout) gets the stored answer (`replayed`), not a 409."
        ),
    ] = None,
) -> UploadOut:
    form = await read_photo_form(request, settings, list_fields=(VIEWS_FIELD,))
    result = await anyio.to_thread.run_sync(
        functools.partial(
            shopper.upload_photos,
            svc,
            return_id,
            form.photos,
            idempotency_key=idempotency_key,
            views=form.lists[VIEWS_FIELD],
        ),
        limiter=slots.pick(svc.grader, form.photos),
    )
    if result.replayed:  # counted when it was decided
        return result
    decision = result.decision
    metrics.record_photos((p.quality.model_dump() for p in result.photos), source="shopper")
    metrics.record_decision(
        decision.outcome, decision.grade_label, [f.model_dump() for f in decision.flags]
    )
    return result


@router.get(
    "/returns/{return_id}",
    response_model=ReturnOut,
    responses=error_responses(401, 403, 404, 429),
    dependencies=[RETURN_READER],
    summary="The return: status, decision history and photos",
)
def get_return(return_id: str, svc: ServiceDep) -> ReturnOut:
    return shopper.get_return(svc, return_id)


def _image(data: bytes, media_type: str) -> Response:
    return Response(
        data,
        media_type=media_type,
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


LabelQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=lengths.LABEL,
        description="'grade' (all damage) or one damage label",
    ),
]


@router.get(
    "/photos/{photo_id}",
    response_class=Response,
    responses={**IMAGE_RESPONSES, **error_responses(401, 403, 404)},
    dependencies=[PHOTO_READER],
    summary="A stored photo (metadata stripped): its return's shopper, or staff",
)
def get_photo(photo_id: str, svc: ServiceDep) -> Response:
    return _image(*media.photo_bytes(svc, photo_id))


@router.get(
    "/photos/{photo_id}/heatmap",
    response_class=Response,
    responses={**PNG_RESPONSE, **error_responses(401, 403, 404)},
    dependencies=[PHOTO_READER],
    summary="Heatmap overlay of a photo for one damage label (or 'grade')",
)
def get_photo_heatmap(photo_id: str, svc: ServiceDep, label: LabelQuery = "grade") -> Response:
    return _image(media.heatmap_png(svc, photo_id, label), "image/png")
