"""The shopper's return label (issue it, download it as PNG or PDF) and the choice of
how the return is paid back.

``POST /v1/returns/{id}/label`` issues the label of an approved return (a lifecycle step
with its ``label.issued`` event; again: no change). ``GET .../label.png`` and
``.../label.pdf`` draw it, as often as needed. Both are the return's shopper's (or
staff's); a return that is not approved answers 409 ``no_label``.
``POST /v1/returns/{id}/resolution`` is the shopper's pick among the offered methods
(``serving.services.resolutions.choose``) while nothing is issued yet.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from serving.api.deps import RETURN_OWNER, RETURN_READER, ServiceDep
from serving.api.schemas import V1
from serving.errors import error_responses
from serving.services import labels, resolutions
from serving.services.outputs import ResolutionOut

router = APIRouter(prefix=V1, tags=["returns"])
LABEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/png": {}, "application/pdf": {}},
        "description": "The printable 4 x 6 inch return label with its QR code.",
    }
}


class LabelOut(BaseModel):
    return_id: str
    status: str
    png_url: str
    pdf_url: str


def _urls(return_id: str) -> tuple[str, str]:
    base = f"{V1}/returns/{return_id}/label"
    return f"{base}.png", f"{base}.pdf"


@router.post(
    "/returns/{return_id}/label",
    response_model=LabelOut,
    responses=error_responses(401, 403, 404, 409, 429),
    dependencies=[RETURN_READER],
    summary="Issue the return label of an approved return (idempotent)",
)
def issue_label(return_id: str, svc: ServiceDep) -> LabelOut:
    png, pdf = _urls(return_id)
    status = labels.issue(svc, return_id, actor=f"shopper:{return_id}", label_url=pdf)
    return LabelOut(return_id=return_id, status=status, png_url=png, pdf_url=pdf)


@router.get(
    "/returns/{return_id}/label.{fmt}",
    response_class=Response,
    responses={**LABEL_RESPONSES, **error_responses(401, 403, 404, 409, 422, 429)},
    dependencies=[RETURN_READER],
    summary="The return label as PNG or PDF",
)
def get_label(
    return_id: str, fmt: Annotated[Literal["png", "pdf"], Path()], svc: ServiceDep
) -> Response:
    data = labels.label_bytes(svc, return_id, fmt)
    name = f"return-label-{return_id}.{fmt}"
    return Response(
        data,
        media_type=labels.FORMATS[fmt],
        headers={
            "Content-Disposition": f'inline; filename="{name}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


class ResolutionChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["refund", "store_credit", "exchange"]
    exchange_sku: Annotated[str | None, Field(default=None, min_length=1, max_length=64)]


@router.post(
    "/returns/{return_id}/resolution",
    response_model=ResolutionOut,
    responses=error_responses(401, 403, 404, 409, 422, 429),
    dependencies=[RETURN_OWNER],
    summary="Choose how to be paid back: refund, store credit or an exchange",
)
def choose_resolution(return_id: str, body: ResolutionChoice, svc: ServiceDep) -> ResolutionOut:
    return ResolutionOut.model_validate(
        resolutions.choose(svc, return_id, body.method, body.exchange_sku)
    )
