"""Resolving a return: plan it on acceptance, issue it now or on receipt, let the
shopper choose the method (the rules: ``serving.policy.resolution``).

* ``plan`` runs when a return is accepted (the photo check approves it, or a reviewer
  does), in that transaction: one ``resolutions`` row. An instant refund or keep-it is
  issued at once (the ``resolution.issued`` event for the shop's payment system), and a
  keep-it return goes straight to ``resolved``: no label, nothing to send.
* ``settle`` runs when the parcel is dispositioned without anything left for a person
  to check: a planned resolution is issued then, and the return is ``resolved``.
* ``revoke`` runs when a reviewer rejects an accepted return: a planned resolution is
  cancelled, an issued one revoked with a ``resolution.revoked`` event (the shop reverses
  the payment).
* ``choose`` lets the shopper pick another offered method (store credit with its bonus,
  an exchange for another SKU of the same category) while nothing is issued yet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.domain_errors import Conflict, Invalid, NotFound
from serving.policy.dock import recovery_table
from serving.policy.resolution import (
    Method,
    ResolutionContext,
    ResolutionPlan,
    amount_for,
    plan_resolution,
    sentence,
)
from serving.policy.types import Scores
from serving.services import decide, lifecycle, limits, outbox
from serving.services.scores import policy_scores
from serving.services.service import ReturnLensService
from serving.storage import repo
from serving.storage.tables import Resolution, Return


def get(s: Session, return_id: str) -> Resolution | None:
    return s.scalars(select(Resolution).where(Resolution.return_id == return_id)).one_or_none()


def _issue(s: Session, row: Resolution, now: datetime) -> None:
    row.status, row.issued_at = "issued", now
    outbox.emit(
        s,
        type="resolution.issued",
        return_id=row.return_id,
        payload={
            "resolution": row.method,
            "timing": row.timing,
            "amount": float(row.amount),
            "exchange_sku": row.exchange_sku,
            "message": sentence(row.method, row.timing, float(row.amount)),  # type: ignore[arg-type]
        },
        now=now,
    )


def plan(
    s: Session,
    svc: ReturnLensService,
    ret: Return,
    *,
    category: str,
    price: float,
    scores: Scores,
    rejected_returns: int,
    recent_returns: int,
    now: datetime,
    actor: str,
) -> ResolutionPlan | None:
    """Plan (and maybe issue) the resolution of an accepted return; None when it has one.

    A resolution cancelled or revoked by an earlier rejection is replaced: the return was
    accepted again (a reviewer overturned the rejection)."""
    existing = get(s, ret.id)
    if existing is not None and existing.status in ("planned", "issued"):
        return None
    if existing is not None:
        s.delete(existing)
        s.flush()
    policy = svc.policy.fitted_to(scores.grade_labels, scores.damage_labels)
    _, cat = policy.category(category)
    best = recovery_table(cat, price, scores)[0]
    ctx = ResolutionContext(price, scores, rejected_returns, recent_returns)
    result = plan_resolution(cat.resolution, ctx, best.expected_recovery if best.eligible else None)
    row = Resolution(
        id=repo.new_id("res"),
        return_id=ret.id,
        method=result.method,
        timing=result.timing,
        amount=result.amount,
        expected_recovery=result.expected_recovery,
        offer=list(result.offer),
        status="planned",
        policy_version=policy.version,
        planned_at=now,
    )
    s.add(row)
    if result.timing in ("instant", "keep_it"):
        _issue(s, row, now)
    if result.keep_item:
        lifecycle.move(
            s, ret, "resolved", actor=actor, why="keep it: a return would lose money", now=now
        )
    return result


def settle(s: Session, ret: Return, *, now: datetime, actor: str) -> None:
    """Issue what is planned (a refund on receipt when nothing was) and resolve."""
    row = get(s, ret.id)
    if row is None:
        price = _price(s, ret)
        row = Resolution(
            id=repo.new_id("res"), return_id=ret.id, method="refund", timing="on_receipt",
            amount=round(price, 2), expected_recovery=None, offer=["refund"], status="planned",
            policy_version="none", planned_at=now,
        )  # fmt: skip
        s.add(row)
    if row.status == "planned":
        _issue(s, row, now)
    if lifecycle.can_move(ret.status, "resolved"):
        lifecycle.move(s, ret, "resolved", actor=actor, why=f"{row.method} issued", now=now)


def _price(s: Session, ret: Return) -> float:
    line = repo.order_line(s, ret.order_id, ret.sku)
    return float(line.price) if line is not None else 0.0


def choose(
    svc: ReturnLensService, return_id: str, method: Method, exchange_sku: str | None
) -> dict[str, Any]:
    """The shopper picks one of the offered methods before anything is issued."""
    now = svc.now()
    with svc.db.write() as s:
        ret = repo.get_return(s, return_id, lock=True)
        row = get(s, return_id) if ret is not None else None
        if ret is None or row is None:
            raise Conflict(
                "This return has no resolution to choose yet: it is settled once approved.",
                code="no_resolution",
            )
        if row.status != "planned":
            raise Conflict(
                f"The {row.method.replace('_', ' ')} for this return was already issued.",
                code="resolution_issued",
            )
        if method not in row.offer:
            raise Invalid(
                f"{method!r} is not offered for this return; choose one of {', '.join(row.offer)}.",
                code="method_not_offered",
                details={"offer": list(row.offer)},
            )
        row.exchange_sku = _exchange_sku(s, ret, exchange_sku) if method == "exchange" else None
        _, cat = svc.policy.category(_category(s, ret))
        row.method, row.amount = method, amount_for(cat.resolution, method, _price(s, ret))
        repo.append_audit(
            s, at=now, actor=f"shopper:{return_id}", action="resolution_chosen",
            subject_type="return", subject_id=return_id,
            payload={"method": method, "exchange_sku": row.exchange_sku},
        )  # fmt: skip
        return view(row)


def _category(s: Session, ret: Return) -> str:
    item = repo.get_catalog_item(s, ret.sku)
    return item.category if item is not None else "default"


def _exchange_sku(s: Session, ret: Return, sku: str | None) -> str:
    if not sku:
        raise Invalid("Name the item to exchange for (exchange_sku).", code="invalid_field")
    wanted, own = repo.get_catalog_item(s, sku), repo.get_catalog_item(s, ret.sku)
    if wanted is None:
        raise NotFound(f"There is no item {sku!r} in the catalog.", code="unknown_sku")
    if own is not None and wanted.category != own.category:
        raise Invalid(
            f"An exchange is for another size or variant of the same kind of item; "
            f"{sku!r} is a {wanted.category}, the returned item a {own.category}.",
            code="invalid_exchange",
        )
    return wanted.sku


def view(row: Resolution) -> dict[str, Any]:
    return {
        "method": row.method,
        "timing": row.timing,
        "amount": float(row.amount),
        "status": row.status,
        "offer": list(row.offer),
        "exchange_sku": row.exchange_sku,
        "message": sentence(row.method, row.timing, float(row.amount)),  # type: ignore[arg-type]
    }


def plan_after_review(
    s: Session, svc: ReturnLensService, ret: Return, grade: str | None, now: datetime, actor: str
) -> ResolutionPlan | None:
    """Plan for a return a reviewer accepted: on their grade when they gave one (certain),
    else on the latest decision's scores."""
    latest = repo.latest_decision(s, ret.id)
    if latest is None:
        return None
    scores = policy_scores(
        svc.grader.card, latest.grade_probs, latest.damage_probs, certain=grade,
        fallback=latest.grade,
    )  # fmt: skip
    if scores is None:  # no grade anywhere to price it on: settled on receipt
        return None
    since = now - decide.history_window(svc.policy)
    recent = [
        r
        for r in repo.customer_returns_since(s, ret.customer_id, since, ret.id)
        if limits.counts_as_return(r)
    ]
    return plan(
        s, svc, ret, category=_category(s, ret), price=_price(s, ret), scores=scores,
        rejected_returns=repo.customer_rejected_count(s, ret.customer_id, ret.id),
        recent_returns=len(recent), now=now, actor=actor,
    )  # fmt: skip


def revoke(s: Session, ret: Return, *, now: datetime, actor: str) -> None:
    """A reviewer rejected the return after it was accepted: a planned resolution is
    cancelled (nothing was paid); an issued one (an instant refund) is revoked, and the
    ``resolution.revoked`` event tells the shop's payment system to reverse it."""
    row = get(s, ret.id)
    if row is None or row.status in ("cancelled", "revoked"):
        return
    if row.status == "planned":
        row.status = "cancelled"
        return
    row.status = "revoked"
    outbox.emit(
        s,
        type="resolution.revoked",
        return_id=ret.id,
        payload={
            "resolution": row.method,
            "timing": row.timing,
            "amount": float(row.amount),
            "issued_at": row.issued_at,
            "by": actor,
        },
        now=now,
    )
