"""What enters the service: one pydantic model per request or row, validated once.

The HTTP layer uses these models as request bodies (or subclasses them where HTTP asks
for more, such as a required e-mail), the CSV loader validates each line with them, and
the service functions take them already validated. What needs the served model or the
database (a grade name on the model card, a known SKU) is checked by the service itself.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from serving.services import cursor
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
from serving.services.lifecycle import STATUSES


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


# The staff search (GET /v1/staff/returns): filters, sort and page. Unknown parameters,
# inverted ranges, bad dates and cursors each fail with their own error type, which
# serving/errors.py turns into the answer's code (unknown_field, invalid_range,
# invalid_date, invalid_cursor).
MAX_SEARCH_PAGE: Final = 200
SearchSort = Literal["created_at", "-created_at", "price", "-price"]


def _known_status(value: str) -> str:
    if value not in STATUSES:
        raise ValueError(f"unknown status {value!r}; one of {', '.join(STATUSES)}")
    return value


def _search_time(value: Any, *, end_of_day: bool) -> Any:
    """An ISO date or date-time; a bare date in ``created_to`` means its whole day."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        day = value
    elif isinstance(value, str) and len(value.strip()) == 10:
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            raise PydanticCustomError(
                "invalid_date", "not an ISO date: {v}", {"v": value}
            ) from None
    else:
        try:
            return datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise PydanticCustomError(
                "invalid_date", "not an ISO date or date-time: {v}", {"v": value}
            ) from None
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start + timedelta(days=1, microseconds=-1) if end_of_day else start


SearchFrom = Annotated[UtcDatetime, BeforeValidator(lambda v: _search_time(v, end_of_day=False))]
SearchTo = Annotated[UtcDatetime, BeforeValidator(lambda v: _search_time(v, end_of_day=True))]


class ReturnFilter(InputModel):
    """What the staff search and its CSV export select (every bound inclusive) and in
    which order; the JSON list adds the page (``ReturnQuery``)."""

    status: list[Annotated[str, AfterValidator(_known_status)]] = Field(
        default_factory=list, max_length=len(STATUSES), description="Any of these statuses."
    )
    outcome: Label | None = Field(default=None, description="The latest decision's outcome.")
    flag: Label | None = Field(default=None, description="A flag code on the latest decision.")
    grade: Label | None = Field(default=None, description="The latest decision's grade.")
    reason: ReasonCode | None = None
    category: Category | None = None
    sku: ShopId | None = None
    customer_id: ShopId | None = None
    created_from: SearchFrom | None = Field(default=None, description="ISO date or date-time.")
    created_to: SearchTo | None = Field(
        default=None, description="ISO date (through that day) or date-time."
    )
    price_min: Price | None = Field(default=None, description="The order line's paid price.")
    price_max: Price | None = None
    channel: Label | None = Field(default=None, description="The latest inspection's channel.")
    sort: SearchSort = Field(default="-created_at", description="Ties broken by return id.")

    @model_validator(mode="after")
    def _ranges_in_order(self) -> Self:
        for low, high, name in (
            (self.created_from, self.created_to, "created_from is after created_to"),
            (self.price_min, self.price_max, "price_min is above price_max"),
        ):
            if low is not None and high is not None and low > high:  # type: ignore[operator]
                raise PydanticCustomError("invalid_range", "{why}", {"why": name})
        return self


class ReturnQuery(ReturnFilter):
    limit: int = Field(default=50, ge=1, le=MAX_SEARCH_PAGE)
    cursor: str | None = Field(
        default=None, description="The previous page's next_cursor (opaque)."
    )

    @model_validator(mode="after")
    def _cursor_fits_sort(self) -> Self:
        if self.cursor is not None:
            try:
                cursor.decode(self.cursor, self.sort)
            except ValueError as exc:
                raise PydanticCustomError("invalid_cursor", "{why}", {"why": str(exc)}) from None
        return self
