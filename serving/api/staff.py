"""Staff find returns: a filtered, sorted, cursor-paged list, its CSV export, one record.

Thin on purpose: the query parameters are one input model (``ReturnQuery`` /
``ReturnFilter`` in ``serving/services/inputs.py``, unknown parameters refused), the
work is ``serving.services.return_search`` and ``staff_returns``. Reviewers and admins
may read. The paths sit under ``/v1/staff`` because ``/v1/returns`` is the shopper's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from serving.api.deps import REVIEWER, ServiceDep
from serving.api.returns import IMAGE_RESPONSES
from serving.api.schemas import V1
from serving.errors import error_responses
from serving.services import return_search, staff_returns
from serving.services.inputs import ReturnFilter, ReturnQuery
from serving.storage.photostore import MEDIA_TYPE

router = APIRouter(prefix=f"{V1}/staff", tags=["staff"])


@router.get(
    "/returns",
    response_model=return_search.ReturnPageOut,
    responses=error_responses(401, 403, 422, 429),
    dependencies=[REVIEWER],
    summary="Find returns: filters, sort and cursor pages",
)
def list_returns(
    q: Annotated[ReturnQuery, Query()], svc: ServiceDep
) -> return_search.ReturnPageOut:
    return return_search.search(svc, q)


@router.get(
    "/returns.csv",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "Every matching return, streamed"},
        **error_responses(401, 403, 422, 429),
    },
    dependencies=[REVIEWER],
    summary="Every return the filters match, as CSV (streamed)",
)
def export_returns(q: Annotated[ReturnFilter, Query()], svc: ServiceDep) -> StreamingResponse:
    return StreamingResponse(
        return_search.csv_chunks(svc, q),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="returns.csv"'},
    )


@router.get(
    "/returns/{return_id}",
    response_model=staff_returns.StaffReturnOut,
    responses=error_responses(401, 403, 404, 429),
    dependencies=[REVIEWER],
    summary="One return's full record: timeline, photos, decisions, inspections, verdicts",
)
def get_return(return_id: str, svc: ServiceDep) -> staff_returns.StaffReturnOut:
    return staff_returns.full_record(svc, return_id)


@router.get(
    "/catalog/{sku}/reference",
    response_class=Response,
    responses={**IMAGE_RESPONSES, **error_responses(401, 403, 404, 429)},
    dependencies=[REVIEWER],
    summary="A SKU's catalog reference photo: the other side of catalog_photo / wrong_item",
)
def get_reference_photo(sku: str, svc: ServiceDep) -> Response:
    return Response(
        staff_returns.reference_photo(svc, sku),
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
