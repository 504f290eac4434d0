"""The operations dashboard's input, its answers, and the SQL pieces its charts share.

Every chart (``serving.services.ops_queries``) answers for the same selection of returns
as the staff list: ``OpsFilter`` *is* the staff list's ``ReturnFilter`` (same parameter
names, same validation, same error codes: ``unknown_field``, ``invalid_range``,
``invalid_date``) plus the dashboard's own knobs, and the WHERE clauses come from
``return_search.filter_conditions``, so a dashboard number and the list it drills into
can never disagree on what "returns of category X last week" means. The date range is
the return's creation time for every chart: a chart about verdicts or recoveries counts
the verdicts on, and recoveries of, the returns created in the range.

The answers are plain pydantic models (the API's ``response_model``); each carries the
numbers the page draws and nothing the page must recompute.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, SQLColumnExpression, func

from serving.services.inputs import ReturnFilter
from serving.services.return_search import filter_conditions

Bucket = Literal["day", "month"]
# Flag codes by meaning (serving/policy/shopper.py, trust.py): the engine abstained, and
# the signals a fraud analyst follows.
ABSTAIN_CODES: Final = ("unfamiliar_photo", "model_cannot_tell")
UNFAMILIAR_CODE: Final = "unfamiliar_photo"
FRAUD_CODES: Final = ("repeat_returner", "reused_photo", "wrong_item", "reason_condition_mismatch")
# A damage label counts as present on a decision from this probability (the top-SKU
# chart's "damage type"); the policy's own thresholds are per rule, this is a summary.
DAMAGE_PRESENT: Final = 0.5
# Channels whose recovery is scrap value: what the item was paid minus what the channel
# recovers is "value lost to salvage".
SALVAGE_CHANNELS: Final = ("liquidation", "recycle")
# The sustainability view: what physically happens to the item, by dock channel (the
# policy's channel names; a channel a category adds and this map lacks counts as other).
FATE_OF_CHANNEL: Final = {
    "restock": "restocked",
    "open_box": "restocked",
    "resale_used": "resold",
    "refurbish": "refurbished",
    "donate": "donated",
    "recycle": "recycled",
    "liquidation": "liquidated",
    "return_to_vendor": "returned_to_vendor",
}
FATES: Final = (
    "restocked",
    "refurbished",
    "resold",
    "donated",
    "recycled",
    "liquidated",
    "returned_to_vendor",
    "other",
)
OUTCOME_MIX: Final = ("auto_approved", "retake", "review", "rejected", "kept", "undecided")
# Queue age bands (upper bound in hours, label); the last band is open.
AGE_BANDS: Final = ((1, "under 1 h"), (4, "1-4 h"), (24, "4-24 h"), (72, "1-3 days"))
OVER_AGE: Final = "over 3 days"


class OpsFilter(ReturnFilter):
    """The staff list's filters plus the dashboard's time bucket and list length.

    ``sort`` is inherited and accepted (a link copied from the list keeps working) but
    orders nothing here.
    """

    bucket: Bucket = Field(default="day", description="Time bucket of the over-time charts.")
    top: int = Field(default=10, ge=1, le=50, description="Rows of the top-N lists.")


def where(f: OpsFilter) -> list[ColumnElement[bool]]:
    """The filter's WHERE clauses on ``returns``: the staff list's, not a copy."""
    return filter_conditions(f)


def period(
    dialect: str, column: SQLColumnExpression[datetime], bucket: Bucket
) -> ColumnElement[str]:
    """A UTC timestamp column as its bucket's label (``2026-03-01`` or ``2026-03``).

    SQLite keeps ``UTCDateTime`` as naive UTC text, so ``strftime`` reads it as is;
    PostgreSQL keeps ``timestamptz``, converted to UTC first so the session's time zone
    cannot move a return into another day.
    """
    if dialect == "postgresql":
        pattern = "YYYY-MM-DD" if bucket == "day" else "YYYY-MM"
        return func.to_char(func.timezone("UTC", column), pattern)
    return func.strftime("%Y-%m-%d" if bucket == "day" else "%Y-%m", column)


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


class Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class VolumeRow(Out):
    period: str
    reason: str
    category: str | None
    count: int


class VolumeOut(Out):
    bucket: Bucket
    total: int
    rows: list[VolumeRow] = Field(description="Returns created, by period, reason, category.")


class OutcomesOut(Out):
    total: int
    counts: dict[str, int] = Field(
        description="Returns by their latest decision: auto_approved, retake, review, "
        "rejected, kept (refunded and kept: a keep-it resolution), undecided (no decision)."
    )


class TrustRow(Out):
    period: str
    decided: int = Field(description="Returns with a decision.")
    abstained: int = Field(
        description="Of those, the engine abstained (unfamiliar or cannot tell)."
    )
    unfamiliar: int = Field(description="Of those, a photo was unfamiliar to the model.")
    abstain_rate: float | None
    unfamiliar_rate: float | None


class TrustOut(Out):
    bucket: Bucket
    decided: int
    abstained: int
    unfamiliar: int
    abstain_rate: float | None
    unfamiliar_rate: float | None
    rows: list[TrustRow]


class GradeRow(Out):
    category: str | None
    sku: str
    grade: str
    count: int


class GradesOut(Out):
    total: int
    rows: list[GradeRow] = Field(description="Returns by category, SKU and latest grade.")


class SkuRate(Out):
    sku: str
    category: str | None
    returns: int
    sold: int = Field(description="Units of the SKU on every order line.")
    rate: float | None = Field(description="returns / sold.")


class SkuDamage(Out):
    damage: str
    sku: str
    count: int = Field(description=f"Latest decisions with P(damage) >= {DAMAGE_PRESENT}.")


class TopSkusOut(Out):
    by_rate: list[SkuRate]
    by_damage: list[SkuDamage]


class ChannelRecovery(Out):
    channel: str
    items: int
    paid: float = Field(description="What the shoppers paid for these items.")
    expected: float = Field(description="Recovery expected when the return was accepted.")
    realised: float = Field(description="Recovery of the channel the dock routed the item to.")


class RecoveryOut(Out):
    channels: list[ChannelRecovery]
    salvage_items: int
    salvage_loss: float = Field(description="Paid minus recovered, salvage channels only.")


class FateShare(Out):
    fate: str
    items: int
    share: float | None


class SustainabilityOut(Out):
    routed: int = Field(description="Returns routed to a channel at the dock.")
    fates: list[FateShare]


class ReviewerLoad(Out):
    reviewer: str
    approve: int
    reject: int
    correct: int
    total: int


class QueueAge(Out):
    band: str
    returns: int
    inspections: int


class GradeAgreement(Out):
    grade: str
    n: int
    agree: int
    rate: float | None


class ReviewersOut(Out):
    workload: list[ReviewerLoad]
    queue_age: list[QueueAge] = Field(description="Items waiting for a verdict, by age.")
    agreement: list[GradeAgreement] = Field(description="Verdicts keeping the model's grade.")


class FlagCount(Out):
    period: str
    code: str
    count: int


class Returner(Out):
    customer_id: str
    returns: int


class FraudOut(Out):
    bucket: Bucket
    flags: list[FlagCount] = Field(description="Fraud flags on latest decisions, by period.")
    repeat_returners: list[Returner] = Field(description="Customers with two or more returns.")
