"""What enters the service: one pydantic model per request or row, validated once.

The HTTP layer uses these models as request bodies (or subclasses them where HTTP asks
for more, such as a required e-mail), the CSV loader validates each line with them, and
the service functions take them already validated. What needs the served model or the
database (a grade name on the model card, a known SKU) is checked by the service itself.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving.services.fields import (
    Category,
    ClaimedReturnId,
    Email,
    IdempotencyKey,
    ItemName,
    KeyName,
    Label,
    Note,
    Price,
    ReasonCode,
    Role,
    ShopId,
    StationId,
    SubjectId,
    SubjectType,
    UtcDatetime,
    VerdictKind,
)


class InputModel(BaseModel):
    """Unknown fields are refused rather than ignored: a typo must not pass silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CreateReturnRequest(InputModel):
    order_id: ShopId = Field(examples=["ORD-1001"])
    sku: ShopId
    reason: ReasonCode
    note: Note = Field(default=None)
    email: Email | None = Field(
        default=None,
        description="When given, it must match the order's customer e-mail (strip + "
        "casefold); a mismatch is answered like an unknown order, so ids cannot be probed.",
    )


class CatalogRow(InputModel):
    sku: ShopId
    category: Category
    name: ItemName
    price: Price


class OrderRow(InputModel):
    """One order line. A customer without an e-mail can never look the order up."""

    order_id: ShopId
    customer_id: ShopId
    customer_email: Email | None = None
    sku: ShopId
    price: Price
    quantity: int = Field(default=1, ge=1, le=10_000)
    delivered_at: UtcDatetime | None = None


class ReviewRequest(InputModel):
    """A reviewer's verdict; the reviewer is the caller, never a field of the body."""

    subject_type: SubjectType
    subject_id: SubjectId
    verdict: VerdictKind
    grade: Label | None = Field(
        default=None, description="Corrected grade (a 'correct' verdict needs it or damage)."
    )
    damage: list[Label] | None = Field(
        default=None, max_length=32, description="Corrected damage labels ([] = none)."
    )
    note: Note = Field(default=None)

    @model_validator(mode="after")
    def _correction_says_what(self) -> Self:
        if self.verdict == "correct" and self.grade is None and self.damage is None:
            raise ValueError("a correction needs a grade or damage labels")
        return self


class InspectionRequest(BaseModel):
    """One dock inspection: the photos, the label's return id and the station's key."""

    model_config = ConfigDict(extra="forbid")

    return_id: ClaimedReturnId = None
    photos: list[bytes]
    idempotency_key: IdempotencyKey
    station_id: StationId


class ApiKeyRequest(InputModel):
    name: KeyName
    role: Role
