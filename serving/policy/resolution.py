"""How an accepted return is resolved: refund, store credit or exchange, now or on
receipt, or "keep it". Pure: the category's rule, the price and the photo scores in,
a plan out.

* **Keep it.** The expected recovery of the item at its photo grade is what the dock
  would get for it: the best eligible channel of ``serving.policy.dock.recovery_table``
  (price x (1 - markdown) - handling) minus the return parcel's cost
  (``keep_it.return_shipping``). Below ``keep_it.floor`` a return loses money, so the
  shopper is refunded at once and keeps (or donates) the item; no label is issued.
* **Instant refund.** A low-risk return is refunded at pre-approval instead of on
  receipt: price at most ``instant_refund.max_price``, grade confidence at least
  ``min_confidence``, and a trusted customer (no more than ``max_rejected_returns``
  rejected returns and ``max_recent_returns`` earlier returns in the repeat-returner
  window).
* **Method.** ``default`` unless the shopper picks another of ``offer``; store credit
  adds ``store_credit_bonus`` of the price. Payment itself is the shop's: the plan becomes
  a ``resolution.issued`` event.

A category without a ``resolution`` rule refunds to the original payment on receipt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving.policy.types import Scores

Method = Literal["refund", "store_credit", "exchange"]
Timing = Literal["instant", "on_receipt", "keep_it"]
METHOD_WORDS = {
    "refund": "a refund to your original payment",
    "store_credit": "store credit",
    "exchange": "an exchange",
}


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class InstantRefund(_Rule):
    max_price: Annotated[float, Field(ge=0)]
    min_confidence: Annotated[float, Field(ge=0, le=1)]
    max_rejected_returns: Annotated[int, Field(ge=0)] = 0
    max_recent_returns: Annotated[int, Field(ge=0)] = 2


class KeepIt(_Rule):
    floor: float = 0.0  # keep it when the expected recovery is below this
    return_shipping: Annotated[float, Field(ge=0)] = 0.0


class ResolutionRule(_Rule):
    default: Method = "refund"
    offer: Annotated[list[Method], Field(min_length=1)] = ["refund"]
    store_credit_bonus: Annotated[float, Field(ge=0, le=1)] = 0.0
    instant_refund: InstantRefund | None = None
    keep_it: KeepIt | None = None

    @model_validator(mode="after")
    def _default_offered(self) -> ResolutionRule:
        if self.default not in self.offer:
            raise ValueError(f"default {self.default!r} must be one of offer {self.offer}")
        return self


@dataclass(frozen=True)
class ResolutionContext:
    price: float
    scores: Scores  # the photo scores the shopper decision used
    rejected_returns: int
    recent_returns: int  # earlier returns in the repeat-returner window


@dataclass(frozen=True)
class ResolutionPlan:
    method: Method
    timing: Timing
    amount: float
    expected_recovery: float | None  # at the photo grade, after return shipping
    offer: tuple[Method, ...]
    message: str  # one sentence for the shopper

    @property
    def keep_item(self) -> bool:
        return self.timing == "keep_it"


def amount_for(rule: ResolutionRule | None, method: Method, price: float) -> float:
    bonus = rule.store_credit_bonus if rule is not None and method == "store_credit" else 0.0
    return round(price * (1.0 + bonus), 2)


def sentence(plan_method: Method, timing: Timing, amount: float) -> str:
    what = f"{METHOD_WORDS[plan_method]} of {amount:.2f}"
    if timing == "keep_it":
        return (
            f"Please keep the item, or donate it: sending it back would cost more than it "
            f"could be resold for, so you get {what} now and don't need to send anything."
        )
    if timing == "instant":
        return f"You get {what} now; please still send the item back with the label."
    return f"You get {what} when the item reaches our returns centre."


def plan_resolution(
    rule: ResolutionRule | None, ctx: ResolutionContext, recovery: float | None
) -> ResolutionPlan:
    """The plan for an accepted return; ``recovery`` is the best eligible channel's
    expected recovery at the photo grade (``recovery_table(...)[0]``), before shipping."""
    if rule is None:
        amount = round(ctx.price, 2)
        return ResolutionPlan("refund", "on_receipt", amount, None, ("refund",),
                              sentence("refund", "on_receipt", amount))  # fmt: skip
    expected = None if recovery is None else round(recovery - _shipping(rule), 2)
    method = rule.default
    amount = amount_for(rule, method, ctx.price)
    timing: Timing = "on_receipt"
    if rule.keep_it is not None and expected is not None and expected < rule.keep_it.floor:
        method, amount, timing = "refund", round(ctx.price, 2), "keep_it"
    elif _instant(rule.instant_refund, ctx):
        timing = "instant"
    offer = ("refund",) if timing == "keep_it" else tuple(rule.offer)
    return ResolutionPlan(method, timing, amount, expected, offer, sentence(method, timing, amount))


def _shipping(rule: ResolutionRule) -> float:
    return rule.keep_it.return_shipping if rule.keep_it is not None else 0.0


def _instant(rule: InstantRefund | None, ctx: ResolutionContext) -> bool:
    return (
        rule is not None
        and ctx.price <= rule.max_price
        and ctx.scores.confidence >= rule.min_confidence
        and ctx.rejected_returns <= rule.max_rejected_returns
        and ctx.recent_returns <= rule.max_recent_returns
    )
