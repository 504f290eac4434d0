"""The field types every model of the service shares, declared once.

A request row is validated by the same ``Annotated`` type whether it arrives as JSON,
as a CSV line or from Python (demo seeding, tests), so the API and the service cannot
disagree about what a price, an e-mail or a reason code is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final, Literal, get_args

from pydantic import AfterValidator, Field, StringConstraints

# Re-exported beside the other field types; the one list lives with the policy.
from serving.policy.types import ReasonCode as ReasonCode
from serving.storage import lengths

Role = Literal["dock", "reviewer", "admin"]
SubjectType = Literal["return", "inspection"]
VerdictKind = Literal["approve", "reject", "correct"]
QueueSort = Literal["age", "value", "teach"]


def _no_nul(value: str) -> str:
    """PostgreSQL's text types cannot hold NUL (SQLite can): refused on both, alike."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (\\x00)")
    return value


# On every free string below; the patterned ones (key names, idempotency keys) exclude it.
NoNul = AfterValidator(_no_nul)

# Every string bound below is the length of the column the value is stored in
# (serving/storage/lengths.py), so an accepted value fits on SQLite and PostgreSQL alike.
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=3, max_length=lengths.EMAIL, pattern=r"^[^@\s]+@[^@\s]+$"
    ),
    NoNul,
]
# Order ids, customer ids, SKUs: what the shop's own systems use as keys.
ShopId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=lengths.SHOP_ID), NoNul
]
Category = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=lengths.SHOP_ID, to_lower=True
    ),
    NoNul,
]
ItemName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=lengths.ITEM_NAME), NoNul
]
# The service's own ids (a review's subject: "ret_...", "ins_...").
SubjectId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=lengths.ID), NoNul
]
Label = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=lengths.LABEL), NoNul
]
KeyName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=lengths.KEY_NAME, pattern=r"^[A-Za-z0-9_.:-]+$"),
]
IdempotencyKey = Annotated[
    str, StringConstraints(pattern=rf"^[A-Za-z0-9_.:-]{{1,{lengths.IDEMPOTENCY_KEY}}}$")
]
StationId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=lengths.STATION_ID),
    NoNul,
]


def _cents(value: float) -> float:
    return round(value, 2)


Price = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False), AfterValidator(_cents)]


def _none_if_blank(value: str | None) -> str | None:
    return value or None


NoteText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=lengths.NOTE), NoNul]
# A free-text note: blank means none.
Note = Annotated[NoteText | None, AfterValidator(_none_if_blank)]
LabelText = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=lengths.CLAIMED_RETURN_ID), NoNul
]
# The return id a parcel label names, as read (it may name no return): blank means none.
ClaimedReturnId = Annotated[LabelText | None, AfterValidator(_none_if_blank)]

# The times the service accepts (delivery dates, ...). Python's datetime ends at year
# 9999, so a date near either end cannot even be moved to UTC or have a return window
# added to it; nothing real happens outside these bounds.
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2200, 1, 1, tzinfo=UTC)


def _as_utc(value: datetime) -> datetime:
    """A time without an offset is read as UTC; every stored time is aware UTC, and
    within [EARLIEST, LATEST) (a field error otherwise, never an OverflowError)."""
    out_of_range = (
        f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC), not {value.isoformat()}"
    )
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise ValueError(out_of_range) from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError(out_of_range)
    return utc


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


def _fits(column: str, limit: int, values: tuple[str, ...]) -> None:
    too_long = [v for v in values if len(v) > limit]
    if too_long:  # a programming error: fail at import, not on PostgreSQL
        raise ValueError(f"{too_long} do not fit {column} ({limit} characters)")


_fits("returns.reason", lengths.REASON, get_args(ReasonCode))
_fits("api_keys.role", lengths.ROLE, get_args(Role))
_fits("reviews.subject_type", lengths.KIND, get_args(SubjectType))
_fits("reviews.verdict", lengths.KIND, get_args(VerdictKind))
