"""A small returns history with known totals, for the operations dashboard's tests.

Ten returns over two days, written as rows (the photo flow would take a second a return
and could not choose outcomes, channels and verdicts freely): each with its order line,
decisions, inspections, resolution and verdicts as the services would store them, and
its search facts written by the real writer's function (``search_facts.refresh``). The
tests compute every expected number from ``SEEDS`` and ``VERDICTS`` below.

Traps on purpose: r02 has an older decision whose damage and grade must not count (only
the latest decision does); r01 has an older inspection routed to recycle (only the
newest counts); r04 has a *cancelled* keep-it resolution (not "kept"); r08's stain sits
exactly on the damage threshold (counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from serving.storage import search_facts
from serving.storage.tables import (
    CatalogItem,
    Customer,
    Decision,
    Grading,
    Inspection,
    Order,
    OrderLine,
    Resolution,
    Return,
    Review,
)

DAY1 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
SKUS = {"k-1": "kitchen", "k-2": "kitchen", "t-1": "toys"}
QUANTITY = 2  # units on each return's order line
EXTRA_SOLD = {"k-1": 12}  # units on orders nobody returned


@dataclass(frozen=True)
class Seed:
    id: str
    day: datetime
    sku: str
    reason: str
    customer: str
    outcome: str | None
    grade: str | None = None
    flags: tuple[str, ...] = ()
    damage: dict[str, float] = field(default_factory=dict)
    price: float = 40.0
    channel: str | None = None  # the newest inspection's
    realised: float | None = None  # the newest inspection's expected recovery
    expected: float | None = None  # the resolution's (None: no resolution)
    timing: str = "on_receipt"
    resolution_status: str = "planned"
    status: str = "approved"
    waiting_h: float | None = None  # needs_review: hours since the status changed

    @property
    def category(self) -> str:
        return SKUS[self.sku]


SEEDS = (
    Seed("ret_ops01", DAY1, "k-1", "changed_mind", "c-1", "approved", "A_new",
         channel="restock", realised=36.0, expected=35.0),
    Seed("ret_ops02", DAY1, "k-1", "defective", "c-1", "approved", "C_good",
         damage={"scratch": 0.7}, channel="refurbish", realised=18.0, expected=20.0),
    Seed("ret_ops03", DAY1, "k-2", "changed_mind", "c-2", "needs_review", "E_damaged",
         flags=("unfamiliar_photo",), damage={"crack": 0.9}, price=30.0, channel="recycle",
         realised=1.0, status="needs_review", waiting_h=0.5),
    Seed("ret_ops04", DAY1, "t-1", "defective", "c-3", "rejected", "E_damaged",
         flags=("repeat_returner",), damage={"crack": 0.8, "scratch": 0.6}, price=20.0,
         expected=-3.0, timing="keep_it", resolution_status="cancelled", status="rejected"),
    Seed("ret_ops05", DAY2, "t-1", "changed_mind", "c-1", "approved", "B_like_new",
         price=10.0, expected=-2.0, timing="keep_it", resolution_status="issued"),
    Seed("ret_ops06", DAY2, "k-1", "does_not_fit", "c-4", "retake",
         flags=("photo_quality",), status="retake"),
    Seed("ret_ops07", DAY2, "k-2", "defective", "c-2", "needs_review", "C_good",
         flags=("model_cannot_tell",), damage={"scratch": 0.55}, price=30.0,
         channel="liquidation", realised=4.5, status="needs_review", waiting_h=2.0),
    Seed("ret_ops08", DAY2, "t-1", "changed_mind", "c-5", "needs_review", "D_fair",
         flags=("reused_photo", "wrong_item"), damage={"stain": 0.5}, price=20.0,
         status="needs_review", waiting_h=24 * 5),
    Seed("ret_ops09", DAY2, "k-1", "changed_mind", "c-1", None, status="awaiting_photos"),
    Seed("ret_ops10", DAY2, "k-2", "changed_mind", "c-6", "approved", "A_new",
         damage={"crack": 0.2}, price=30.0, channel="open_box", realised=24.0, expected=25.0),
)  # fmt: skip
# The inspections' grades (the model's grade a verdict on an inspection is compared with).
INSPECTION_GRADE = {"ret_ops02": "C_good", "ret_ops03": "E_damaged"}
# An inspection held for review (pending), hours old: r07's.
HELD_INSPECTION_H = {"ret_ops07": 10.0}


@dataclass(frozen=True)
class Verdict:
    reviewer: str
    subject: str  # "return" or "inspection"
    return_id: str
    verdict: str
    grade: str | None = None


VERDICTS = (
    Verdict("alice", "return", "ret_ops03", "correct", "D_fair"),  # model E_damaged: disagree
    Verdict("alice", "return", "ret_ops07", "approve"),  # model C_good: agree
    Verdict("bob", "inspection", "ret_ops02", "correct", "C_good"),  # model C_good: agree
    Verdict("bob", "return", "ret_ops08", "reject"),  # no grade compared
    Verdict("bob", "inspection", "ret_ops03", "approve"),  # model E_damaged: agree
)


def day_of(seed: Seed) -> date:
    return seed.day.date()


def _grading(s: Session, gid: str, subject: str, sid: str, at: datetime) -> str:
    s.add(
        Grading(
            id=gid, subject_type=subject, subject_id=sid, profile="shopper",
            model_version="m-test", grade=None, confidence=None, grade_probs={},
            damage_probs={}, embedding=None, photo_ids=[], usable_photo_ids=[], created_at=at,
        )
    )  # fmt: skip
    s.flush()  # no relationship orders the inserts: the grading goes first
    return gid


def _decision(s: Session, r: Seed, seq: int, outcome: str, grade: str | None,
              damage: dict[str, float], flags: tuple[str, ...], at: datetime) -> None:  # fmt: skip
    gid = _grading(s, f"grd_{r.id}_{seq}", "return", r.id, at)
    s.add(
        Decision(
            id=f"dec_{r.id}_{seq}", return_id=r.id, sequence=seq, grading_id=gid,
            outcome=outcome, flags=[{"code": c, "effect": "review"} for c in flags],
            grade=grade, confidence=0.9, grade_probs={}, damage_probs=damage,
            shopper_message="", model_version="m-test", policy_version="pol-test",
            inputs={}, photo_ids=[], created_at=at,
        )
    )  # fmt: skip
    s.flush()


def _inspection(s: Session, r: Seed, n: int, channel: str, realised: float,
                at: datetime, review_status: str = "none") -> str:  # fmt: skip
    iid = f"ins_{r.id}_{n}"
    gid = _grading(s, f"grd_{iid}", "inspection", iid, at)
    s.add(
        Inspection(
            id=iid, idempotency_key=f"key-{iid}", request_fingerprint="0" * 64,
            station_id="dock-1", return_id=r.id, claimed_return_id=r.id, status="matched",
            grading_id=gid, shopper_decision_id=None, shopper_grade=r.grade,
            grade=INSPECTION_GRADE.get(r.id, r.grade), confidence=0.9, grade_probs={},
            damage_probs={}, tier=None, markdown=None, channel=channel,
            expected_recovery=realised, alternatives=[], flags=[], similarity=None,
            familiar=True, needs_review=review_status == "pending",
            review_status=review_status, model_version="m-test", policy_version="pol-test",
            photo_ids=[], created_at=at,
        )
    )  # fmt: skip
    s.flush()
    return iid


def _return(s: Session, r: Seed, now: datetime) -> None:
    s.add(Order(id=f"o-{r.id}", customer_id=r.customer, created_at=r.day))
    s.flush()
    s.add(OrderLine(order_id=f"o-{r.id}", sku=r.sku, price=r.price, quantity=QUANTITY))
    s.flush()
    updated = now - timedelta(hours=r.waiting_h) if r.waiting_h is not None else r.day
    ret = Return(
        id=r.id, order_id=f"o-{r.id}", sku=r.sku, customer_id=r.customer, reason=r.reason,
        note=None, status=r.status, shopper_token_hash="0" * 64, created_at=r.day,
        updated_at=updated,
    )  # fmt: skip
    s.add(ret)
    s.flush()
    if r.id == "ret_ops02":  # an older decision: crack and E_damaged must not count
        _decision(s, r, 1, "retake", "E_damaged", {"crack": 0.95}, (), r.day)
    if r.outcome is not None:
        seq = 2 if r.id == "ret_ops02" else 1
        _decision(s, r, seq, r.outcome, r.grade, r.damage, r.flags, r.day + timedelta(minutes=5))
    if r.id == "ret_ops01":  # an older inspection, routed elsewhere: must not count
        _inspection(s, r, 0, "recycle", 0.0, r.day + timedelta(hours=1))
    if r.channel is not None and r.realised is not None:
        held = HELD_INSPECTION_H.get(r.id)
        at = now - timedelta(hours=held) if held is not None else r.day + timedelta(hours=2)
        _inspection(s, r, 1, r.channel, r.realised, at, "pending" if held else "none")
    if r.expected is not None:
        s.add(
            Resolution(
                id=f"res_{r.id}", return_id=r.id, method="refund", timing=r.timing,
                amount=r.price, expected_recovery=r.expected, offer=["refund"],
                exchange_sku=None, status=r.resolution_status, policy_version="pol-test",
                planned_at=r.day, issued_at=None,
            )
        )  # fmt: skip
    search_facts.refresh(s, ret)


def _verdicts(s: Session) -> None:
    for i, v in enumerate(VERDICTS):
        inspection = f"ins_{v.return_id}_1" if v.subject == "inspection" else None
        s.add(
            Review(
                id=f"rev_ops{i}", subject_type=v.subject,
                subject_id=inspection or v.return_id,
                return_id=v.return_id if v.subject == "return" else None,
                inspection_id=inspection, reviewer=v.reviewer, verdict=v.verdict,
                grade=v.grade, damage=None, note=None, model_version="m-test", photo_ids=[],
                created_at=DAY2 + timedelta(hours=i),
            )
        )  # fmt: skip


def seed(database_url: str, now: datetime) -> None:
    """Write the data set into a migrated database (``now``: the queue's clock)."""
    engine = create_engine(database_url)
    try:
        with Session(engine) as s, s.begin():
            customers = sorted({r.customer for r in SEEDS})
            s.add_all(Customer(id=c, email=None, created_at=DAY1) for c in customers)
            s.add_all(
                CatalogItem(sku=k, category=c, name=k, price=1.0, updated_at=DAY1)
                for k, c in SKUS.items()
            )
            s.flush()
            for sku, units in EXTRA_SOLD.items():
                s.add(Order(id=f"o-extra-{sku}", customer_id=customers[0], created_at=DAY1))
                s.flush()
                s.add(OrderLine(order_id=f"o-extra-{sku}", sku=sku, price=1.0, quantity=units))
            for r in SEEDS:
                _return(s, r, now)
            s.flush()
            _verdicts(s)
    finally:
        engine.dispose()
