"""Shopper flow: create a return, upload photos, read the return and its photos.

Creating a return is public but needs the order's customer email as well as the order
id, and answers an unknown order and a wrong email alike (404 ``unknown_order``), so
order ids cannot be probed. The answer carries the shopper token: it opens this one
return and nothing else. Uploads run decode + inference in a worker thread (one batch
per request, bounded by the process's inference limiter), never on the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request, Response

from serving.api.deps import (
    LimiterDep,
    MetricsDep,
    PhotoReaderDep,
    ReturnOwnerDep,
    ReturnReaderDep,
    ServiceDep,
    SettingsDep,
)
from serving.api.schemas import (
    V1,
    CreatedReturnOut,
    CreateReturnIn,
    ReturnOut,
    UploadOut,
    decision_out,
    photo_out,
    return_out,
)
from serving.api.uploads import multipart_body, read_photo_form
from serving.errors import error_responses
from serving.services.views import CreateReturnRequest

router = APIRouter(prefix=V1, tags=["shopper"])
IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/jpeg": {}, "image/png": {}},
        "description": "The stored photo (metadata stripped).",
    }
}
PNG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "Heatmap overlay (PNG)."}
}


@router.post(
    "/returns",
    status_code=201,
    response_model=CreatedReturnOut,
    responses=error_responses(404, 422, 429),
    summary="Open a return for one item of a delivered order",
)
def create_return(body: CreateReturnIn, svc: ServiceDep) -> CreatedReturnOut:
    created = svc.create_return(
        CreateReturnRequest(
            order_id=body.order_id,
            sku=body.sku,
            reason=body.reason,
            note=body.note or None,
            email=body.email,
        )
    )
    status = svc.get_return(created.return_id).status
    base = f"{V1}/returns/{created.return_id}"
    return CreatedReturnOut(
        return_id=created.return_id,
        token=created.token,
        status=status,
        upload_url=f"{base}/photos",
        return_url=base,
    )


@router.post(
    "/returns/{return_id}/photos",
    response_model=UploadOut,
    responses=error_responses(401, 403, 404, 409, 413, 415, 422, 429),
    openapi_extra=multipart_body(),
    summary="Upload 1-6 photos of the item and get the decision",
)
async def upload_photos(
    return_id: str,
    request: Request,
    who: ReturnOwnerDep,
    svc: ServiceDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    limiter: LimiterDep,
) -> UploadOut:
    del who  # the dependency has checked the token; nothing else is needed from it
    form = await read_photo_form(request, settings)
    result = await anyio.to_thread.run_sync(
        svc.upload_photos, return_id, form.photos, limiter=limiter
    )
    by_id = {p.photo_id: p for p in result.photos}
    decision = decision_out(result.decision, by_id)
    metrics.record_photos((p.quality for p in result.photos), source="shopper")
    metrics.record_decision(
        decision.outcome, decision.grade.label if decision.grade else None, result.decision.flags
    )
    return UploadOut(
        return_id=result.return_id, photos=[photo_out(p) for p in result.photos], decision=decision
    )


@router.get(
    "/returns/{return_id}",
    response_model=ReturnOut,
    responses=error_responses(401, 403, 404, 429),
    summary="The return: status, decision history and photos",
)
def get_return(return_id: str, who: ReturnReaderDep, svc: ServiceDep) -> ReturnOut:
    del who
    return return_out(svc.get_return(return_id))


def _image(data: bytes, media_type: str) -> Response:
    return Response(
        data,
        media_type=media_type,
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


LabelQuery = Annotated[
    str, Query(min_length=1, max_length=64, description="'grade' (all damage) or one damage label")
]


@router.get(
    "/photos/{photo_id}",
    response_class=Response,
    responses={**IMAGE_RESPONSES, **error_responses(401, 403, 404)},
    summary="A stored photo (metadata stripped): its return's shopper, or staff",
)
def get_photo(photo_id: str, who: PhotoReaderDep, svc: ServiceDep) -> Response:
    del who
    return _image(*svc.photo_bytes(photo_id))


@router.get(
    "/photos/{photo_id}/heatmap",
    response_class=Response,
    responses={**PNG_RESPONSE, **error_responses(401, 403, 404)},
    summary="Heatmap overlay of a photo for one damage label (or 'grade')",
)
def get_photo_heatmap(
    photo_id: str, who: PhotoReaderDep, svc: ServiceDep, label: LabelQuery = "grade"
) -> Response:
    del who
    return _image(svc.heatmap_png(photo_id, label), "image/png")
