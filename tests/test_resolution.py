"""Resolving returns (``serving.policy.resolution``, ``serving.services.resolutions``):
the pure plan, keep-it, instant refunds, the shopper's choice, and settlement on
receipt, on SQLite and PostgreSQL with the tiny model and the shipped policy."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy import select

from serving.domain_errors import Conflict, Invalid
from serving.policy import default_policy_path, parse_policy
from serving.policy.resolution import (
    InstantRefund,
    KeepIt,
    ResolutionContext,
    ResolutionRule,
    plan_resolution,
)
from serving.policy.types import Scores
from serving.services import admin, decide, dock, labels, resolutions, review, shopper
from serving.services.inputs import CreateReturnRequest, InspectionRequest, OrderRow, ReviewRequest
from serving.services.service import ReturnLensService
from serving.storage.tables import OutboxEvent
from tests.service_data import DELIVERED, blurry, clean, damaged

GRADES = ("A_new", "B_like_new", "C_good", "D_fair", "E_damaged")
RULE = ResolutionRule(
    default="refund",
    offer=["refund", "store_credit"],
    store_credit_bonus=0.1,
    instant_refund=InstantRefund(max_price=60.0, min_confidence=0.9),
    keep_it=KeepIt(floor=0.0, return_shipping=6.0),
)


def certain(grade: str) -> Scores:
    return Scores(GRADES, {g: float(g == grade) for g in GRADES}, {})


def test_the_plan_follows_the_rule() -> None:
    ctx = ResolutionContext(price=80.0, scores=certain("A_new"), rejected_returns=0,
                            recent_returns=0)  # fmt: skip
    on_receipt = plan_resolution(RULE, ctx, recovery=98.0)
    assert (on_receipt.timing, on_receipt.method, on_receipt.amount) == (
        "on_receipt",
        "refund",
        80,
    )
    assert on_receipt.expected_recovery == 92.0  # 98 - 6 of return shipping
    cheap = ResolutionContext(40.0, certain("A_new"), 0, 0)
    assert plan_resolution(RULE, cheap, recovery=38.0).timing == "instant"
    distrusted = ResolutionContext(40.0, certain("A_new"), 1, 0)
    assert plan_resolution(RULE, distrusted, recovery=38.0).timing == "on_receipt"
    keep = plan_resolution(RULE, cheap, recovery=5.0)  # 5 - 6 < 0: a return loses money
    assert keep.keep_item and keep.offer == ("refund",) and keep.amount == 40.0
    assert "keep the item" in keep.message
    unruled = plan_resolution(None, ctx, recovery=None)
    assert (unruled.timing, unruled.method) == ("on_receipt", "refund")


@pytest.fixture
def shop_line(svc: ReturnLensService) -> ReturnLensService:
    """Order o-r (customer c-r, no history): an 80.0 mug, above the instant-refund price
    (60) and below the high-value review (100)."""
    admin.upsert_orders(
        svc,
        [OrderRow(order_id="o-r", customer_id="c-r", sku="mug-01", price=80.0,
                  delivered_at=DELIVERED, quantity=3)],
    )  # fmt: skip
    return svc


def open_return(svc: ReturnLensService, order: str, reason: str = "changed_mind") -> str:
    req = CreateReturnRequest(order_id=order, sku="mug-01", reason=reason)
    return shopper.create_return(svc, req).return_id


def events(svc: ReturnLensService, rid: str, kind: str) -> list[dict[str, object]]:
    with svc.db.read() as s:
        rows = s.scalars(
            select(OutboxEvent).where(OutboxEvent.return_id == rid, OutboxEvent.type == kind)
        ).all()
        return [dict(r.payload) for r in rows]


def test_a_return_that_would_lose_money_is_kept_and_refunded(svc: ReturnLensService) -> None:
    rid = open_return(svc, "o-1", reason="damaged_in_transit")
    decision = shopper.upload_photos(svc, rid, [damaged(seed=3)]).decision
    assert decision.outcome == "approved" and decision.grade_label == "E_damaged"
    ret = shopper.get_return(svc, rid)
    assert ret.status == "resolved" and ret.resolution is not None
    assert ret.resolution.timing == "keep_it" and ret.resolution.amount == 25.0
    assert "keep the item" in decision.message and ret.status_message == decision.message
    [issued] = events(svc, rid, "resolution.issued")
    assert issued["timing"] == "keep_it" and issued["amount"] == 25.0
    with pytest.raises(Conflict) as err:  # nothing to send: no label
        labels.issue(svc, rid, actor="shopper", label_url="x")
    assert err.value.code == "no_label"


def test_a_cheap_confident_return_is_refunded_at_once(svc: ReturnLensService) -> None:
    """The tiny model is never 90% sure: the shipped policy with a 0.5 bar instead."""
    data = yaml.safe_load(default_policy_path().read_text(encoding="utf-8"))
    data["defaults"]["resolution"]["instant_refund"]["min_confidence"] = 0.5
    svc.policy = decide.policy_for_model(parse_policy(yaml.safe_dump(data)), svc.grader.card)
    rid = open_return(svc, "o-1")
    assert shopper.upload_photos(svc, rid, [clean(seed=1)]).decision.outcome == "approved"
    ret = shopper.get_return(svc, rid)
    assert ret.status == "approved" and ret.resolution is not None
    assert ret.resolution.timing == "instant" and ret.resolution.status == "issued"
    assert len(events(svc, rid, "resolution.issued")) == 1
    req = InspectionRequest(return_id=rid, photos=[clean(seed=2)], idempotency_key="k",
                            station_id="d-1")  # fmt: skip
    dock.inspect(svc, req)
    assert shopper.get_return(svc, rid).status == "resolved"
    assert len(events(svc, rid, "resolution.issued")) == 1  # not issued twice


def test_the_shopper_chooses_store_credit_and_it_is_paid_on_receipt(
    shop_line: ReturnLensService,
) -> None:
    svc = shop_line
    rid = open_return(svc, "o-r")
    assert shopper.upload_photos(svc, rid, [clean(seed=1)]).decision.outcome == "approved"
    planned = shopper.get_return(svc, rid).resolution
    assert planned is not None and (planned.timing, planned.status) == ("on_receipt", "planned")
    assert events(svc, rid, "resolution.issued") == []
    with pytest.raises(Invalid) as err:
        resolutions.choose(svc, rid, "exchange", "box-02")  # a box for a mug
    assert err.value.code == "invalid_exchange"
    chosen = resolutions.choose(svc, rid, "store_credit", None)
    assert chosen["method"] == "store_credit" and chosen["amount"] == pytest.approx(88.0)
    req = InspectionRequest(return_id=rid, photos=[clean(seed=2)], idempotency_key="k",
                            station_id="d-1")  # fmt: skip
    dock.inspect(svc, req)
    ret = shopper.get_return(svc, rid)
    assert ret.status == "resolved" and ret.resolution is not None
    assert ret.resolution.status == "issued" and ret.resolution.method == "store_credit"
    [issued] = events(svc, rid, "resolution.issued")
    assert issued["resolution"] == "store_credit" and issued["amount"] == pytest.approx(88.0)
    with pytest.raises(Conflict) as late:
        resolutions.choose(svc, rid, "refund", None)
    assert late.value.code == "resolution_issued"


def reject(svc: ReturnLensService, rid: str) -> None:
    req = ReviewRequest.model_validate(
        {"subject_type": "return", "subject_id": rid, "verdict": "reject"}
    )
    review.submit_review(svc, req, reviewer="rita")


def test_a_rejection_after_an_instant_refund_revokes_it(svc: ReturnLensService) -> None:
    data = yaml.safe_load(default_policy_path().read_text(encoding="utf-8"))
    data["defaults"]["resolution"]["instant_refund"]["min_confidence"] = 0.5
    svc.policy = decide.policy_for_model(parse_policy(yaml.safe_dump(data)), svc.grader.card)
    rid = open_return(svc, "o-1")
    assert shopper.upload_photos(svc, rid, [clean(seed=1)]).decision.outcome == "approved"
    issued = shopper.get_return(svc, rid).resolution
    assert issued is not None and issued.status == "issued" and issued.timing == "instant"
    reject(svc, rid)
    after = shopper.get_return(svc, rid).resolution
    assert after is not None and after.status == "revoked"
    [revoked] = events(svc, rid, "resolution.revoked")
    assert revoked["amount"] == issued.amount and revoked["by"] == "reviewer:rita"


def test_a_rejection_cancels_a_planned_resolution_and_an_overturn_replans(
    shop_line: ReturnLensService,
) -> None:
    svc = shop_line
    rid = open_return(svc, "o-r")
    assert shopper.upload_photos(svc, rid, [clean(seed=1)]).decision.outcome == "approved"
    reject(svc, rid)
    cancelled = shopper.get_return(svc, rid).resolution
    assert cancelled is not None and cancelled.status == "cancelled"
    assert events(svc, rid, "resolution.revoked") == []  # nothing was paid
    req = ReviewRequest.model_validate(
        {"subject_type": "return", "subject_id": rid, "verdict": "approve"}
    )
    review.submit_review(svc, req, reviewer="rita")  # the rejection overturned
    again = shopper.get_return(svc, rid).resolution
    assert again is not None and again.status == "planned" and again.timing == "on_receipt"


def test_a_reviewer_accepting_a_return_without_a_graded_photo_is_settled_on_receipt(
    svc: ReturnLensService,
) -> None:
    """The only decision was a retake (no usable photo, no scores): approving it plans
    nothing at once, and the parcel's inspection settles it with a refund."""
    rid = open_return(svc, "o-1")
    assert shopper.upload_photos(svc, rid, [blurry(seed=1)]).decision.outcome == "retake"
    req = ReviewRequest.model_validate(
        {"subject_type": "return", "subject_id": rid, "verdict": "approve"}
    )
    review.submit_review(svc, req, reviewer="rita")
    ret = shopper.get_return(svc, rid)
    assert ret.status == "approved" and ret.resolution is None
    inspect = InspectionRequest(return_id=rid, photos=[clean(seed=2)], idempotency_key="k",
                                station_id="d-1")  # fmt: skip
    dock.inspect(svc, inspect)
    settled = shopper.get_return(svc, rid)
    assert settled.status == "resolved" and settled.resolution is not None
    assert (settled.resolution.method, settled.resolution.timing) == ("refund", "on_receipt")
