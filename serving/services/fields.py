"""The field types every model of the service shares, declared once.

A request row is validated by the same ``Annotated`` type whether it arrives as JSON,
as a CSV line or from Python (demo seeding, tests), so the API and the service cannot
disagree about what a price, an e-mail or a reason code is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

# Re-exported beside the other field types; the one list lives with the policy.
from serving.policy.types import ReasonCode as ReasonCode

Role = Literal["dock", "reviewer", "admin"]
SubjectType = Literal["return", "inspection"]
VerdictKind = Literal["approve", "reject", "correct"]
QueueSort = Literal["age", "value"]

Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"
    ),
]
# Order ids, customer ids, SKUs: what the shop's own systems use as keys.
ShopId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Category = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, to_lower=True)
]
ItemName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
KeyName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
]
IdempotencyKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
StationId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


def _cents(value: float) -> float:
    return round(value, 2)


Price = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False), AfterValidator(_cents)]


def _none_if_blank(value: str | None) -> str | None:
    return value or None


NoteText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
# A free-text note: blank means none.
Note = Annotated[NoteText | None, AfterValidator(_none_if_blank)]
LabelText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
# The return id a parcel label names, as read (it may name no return): blank means none.
ClaimedReturnId = Annotated[LabelText | None, AfterValidator(_none_if_blank)]


def _as_utc(value: datetime) -> datetime:
    """A time without an offset is read as UTC; every stored time is aware UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
