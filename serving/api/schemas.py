"""What only the HTTP API adds to the service's models (they are what OpenAPI documents).

Request bodies are the service's input models (``serving.services.inputs``), subclassed
where HTTP asks for more: an e-mail the service treats as optional is required here, and
a catalog row may carry its reference photo base64-encoded. Responses are the service's
output models as they are; the few below only wrap them (a review item with its audit
trail, a count, a new key).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from serving.services.fields import Email, Role, UtcDatetime
from serving.services.inputs import CatalogRow, CreateReturnRequest, OrderRow
from serving.services.outputs import API_PREFIX, ReturnOut
from serving.services.records import AuditEntryOut, InspectionOut

V1 = API_PREFIX


class CreateReturnIn(CreateReturnRequest):
    email: Email = Field(
        description="The order's customer email; it must match the order "
        "(stops anyone from opening returns by guessing ids)."
    )


class CatalogItemIn(CatalogRow):
    reference_photo_base64: str | None = Field(
        None, description="Optional reference photo (JPEG/PNG/WebP), base64-encoded."
    )


class OrderIn(OrderRow):
    """The loader's orders are delivered ones, with the e-mail the shopper will type."""

    customer_email: Email
    delivered_at: UtcDatetime


class ReviewItemOut(BaseModel):
    subject_type: Literal["return", "inspection"]
    subject_id: str
    return_detail: ReturnOut | None = None
    inspection_detail: InspectionOut | None = None
    audit: list[AuditEntryOut]


class UpsertOut(BaseModel):
    upserted: int


class ApiKeyOut(BaseModel):
    name: str
    role: Role
    key: str = Field(description="The key in plaintext; shown only once, stored hashed.")
