"""The review queue, review verdicts (training labels) and the audit trail.

A verdict with a grade and/or damage labels is a training label: it names the photos it
covers and the model version that graded them, so ``dataset export-reviewed`` can turn
reviews into manifest records (grade = reviewer's grade, or the model's grade when the
reviewer approved it unchanged).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from serving.domain_errors import Invalid, NotFound
from serving.services import lifecycle, outbox, resolutions
from serving.services.fields import QueueSort
from serving.services.inputs import ReviewRequest
from serving.services.records import AuditEntryOut, QueueItemOut, ReviewOut
from serving.services.redisposition import redispose
from serving.services.review_order import ReviewOrder, interleave
from serving.services.service import ReturnLensService
from serving.storage import repo
from serving.storage.tables import CatalogItem, Decision, Inspection, OrderLine, Return, Review

MAX_QUEUE = 500
TEACH_CANDIDATES = 2000  # per kind: the oldest waiting items ranked by label value
_RETURN_STATUS = {"approve": "approved", "reject": "rejected", "correct": "reviewed"}


def _check_labels(svc: ReturnLensService, req: ReviewRequest) -> None:
    """The request's shape was validated by ``ReviewRequest``; the labels must be the
    served model's, which only the service knows."""
    card = svc.grader.card
    if req.grade is not None and req.grade not in card.grade_labels:
        raise Invalid(
            f"Unknown grade {req.grade!r}; the model's grades are {', '.join(card.grade_labels)}.",
            code="invalid_label",
            details={"field": "grade", "allowed": list(card.grade_labels)},
        )
    unknown = [d for d in req.damage or () if d not in card.damage_labels]
    if unknown:
        raise Invalid(
            f"Unknown damage label(s) {', '.join(unknown)}; the model's labels are "
            f"{', '.join(card.damage_labels)}.",
            code="invalid_label",
            details={"field": "damage", "allowed": list(card.damage_labels)},
        )


def _emit_verdict(s: Any, row: Review, previous: str | None, now: datetime) -> None:
    """The verdict as an event: a return's tells its shopper what the team decided (by
    e-mail too); an inspection's is for the shop's systems only."""
    payload: dict[str, Any] = {
        "review_id": row.id,
        "subject_type": row.subject_type,
        "subject_id": row.subject_id,
        "verdict": row.verdict,
        "grade": row.grade,
        "damage": row.damage,
    }
    if row.return_id is not None:
        status = _RETURN_STATUS[row.verdict]
        payload["message"] = lifecycle.review_sentence(previous, status)
    outbox.emit(s, type="review.verdict", return_id=row.return_id, payload=payload, now=now)


def submit_review(svc: ReturnLensService, req: ReviewRequest, *, reviewer: str) -> ReviewOut:
    """Store ``reviewer``'s verdict (the caller's key name, never a field of the body)."""
    _check_labels(svc, req)
    now = svc.now()
    damage = sorted(set(req.damage)) if req.damage is not None else None
    with svc.db.write() as s:
        if req.subject_type == "return":
            ret = repo.require_return(s, req.subject_id, lock=True)
            latest = repo.latest_decision(s, ret.id)
            if latest is None:
                raise Invalid(
                    "This return has no photos or decision to review yet.", code="nothing_to_review"
                )
            photo_ids = [p.id for p in repo.return_photos(s, ret.id)]
            model_version: str | None = latest.model_version
            previous: str | None = ret.status
            target = _RETURN_STATUS[req.verdict]
            if target != ret.status:  # approving an approved return changes nothing
                lifecycle.move(
                    s,
                    ret,
                    target,
                    actor=f"reviewer:{reviewer}",
                    why=req.note or f"review verdict: {req.verdict}",
                    now=now,
                    details={"verdict": req.verdict, "grade": req.grade},
                )
            if target in ("approved", "reviewed"):  # accepted: plan how it is settled
                resolutions.plan_after_review(
                    s, svc, ret, req.grade, now, actor=f"reviewer:{reviewer}"
                )
            elif target == "rejected":  # no longer accepted: nothing is owed
                resolutions.revoke(s, ret, now=now, actor=f"reviewer:{reviewer}")
        else:
            ins = s.get(Inspection, req.subject_id)
            if ins is None:
                raise NotFound(
                    f"There is no inspection {req.subject_id!r}.", code="unknown_inspection"
                )
            photo_ids, model_version = list(ins.photo_ids), ins.model_version
            previous = None
            ins.review_status = "reviewed"
            redispose(
                s,
                svc,
                ins,
                verdict=req.verdict,
                grade=req.grade,
                reviewer=reviewer,
                now=now,
            )
        row = Review(
            id=repo.new_id("rev"),
            subject_type=req.subject_type,
            subject_id=req.subject_id,
            return_id=req.subject_id if req.subject_type == "return" else None,
            inspection_id=req.subject_id if req.subject_type == "inspection" else None,
            reviewer=reviewer,
            verdict=req.verdict,
            grade=req.grade,
            damage=damage,
            note=req.note,
            model_version=model_version,
            photo_ids=photo_ids,
            created_at=now,
        )
        s.add(row)
        repo.append_audit(
            s,
            at=now,
            actor=f"reviewer:{row.reviewer}",
            action="reviewed",
            subject_type=req.subject_type,
            subject_id=req.subject_id,
            payload={
                "review_id": row.id,
                "verdict": req.verdict,
                "grade": req.grade,
                "damage": damage,
            },
        )
        _emit_verdict(s, row, previous, now)
        s.flush()
        return ReviewOut.model_validate(row)


def review_queue(
    svc: ReturnLensService, *, sort: QueueSort = "age", limit: int = 50
) -> list[QueueItemOut]:
    """Returns waiting for review and inspections flagged for review.

    ``age``: longest-waiting first (by the time the subject entered review); ``value``:
    highest price at stake first; ``teach``: highest label value first, with the random
    slice interleaved (``serving/services/review_order.py``; the oldest
    ``TEACH_CANDIDATES`` of each kind are ranked). The API bounds ``limit`` to
    1..``MAX_QUEUE``.
    """
    fetch = TEACH_CANDIDATES if sort == "teach" else limit
    with svc.db.read() as s:
        items = _return_items(s, sort, fetch) + _inspection_items(s, sort, fetch)
    if sort == "teach":
        return _teach_order(svc.review_order, items)[:limit]
    if sort == "value":
        items.sort(key=lambda q: (-q.value, q.created_at))
    else:
        items.sort(key=lambda q: q.created_at)
    return items[:limit]


def _teach_order(order: ReviewOrder, items: list[QueueItemOut]) -> list[QueueItemOut]:
    by_value: list[QueueItemOut] = []
    by_chance: list[tuple[float, QueueItemOut]] = []
    for q in items:
        q.teach_score = round(order.score(q.confidence, q.flags, q.value), 6)
        key = order.random_key(q.subject_type, q.subject_id)
        if key < order.random_fraction:
            q.why = "random"
            by_chance.append((key, q))
        else:
            q.why = "value"
            by_value.append(q)
    by_value.sort(key=lambda q: (-(q.teach_score or 0.0), q.created_at, q.subject_id))
    by_chance.sort(key=lambda kq: kq[0])
    return interleave(by_value, [q for _, q in by_chance], order.random_fraction)


def _return_items(s: Any, sort: str, limit: int) -> list[QueueItemOut]:
    stmt = (
        select(Return, OrderLine.price, CatalogItem.category)
        .join(OrderLine, (OrderLine.order_id == Return.order_id) & (OrderLine.sku == Return.sku))
        .join(CatalogItem, CatalogItem.sku == Return.sku)
        .where(Return.status == "needs_review")
    )
    stmt = stmt.order_by(
        OrderLine.price.desc() if sort == "value" else Return.updated_at, Return.id
    )
    out = []
    for ret, price, category in s.execute(stmt.limit(limit)).all():
        d: Decision | None = repo.latest_decision(s, ret.id)
        out.append(
            QueueItemOut(
                subject_type="return",
                subject_id=ret.id,
                created_at=d.created_at if d else ret.created_at,
                value=float(price),
                grade=d.grade if d else None,
                confidence=d.confidence if d else None,
                flags=[f["code"] for f in d.flags if f.get("effect") != "note"] if d else [],
                outcome=ret.status,
                sku=ret.sku,
                category=category,
                photo_ids=list(d.photo_ids) if d else [],
            )
        )
    return out


def _inspection_items(s: Any, sort: str, limit: int) -> list[QueueItemOut]:
    stmt = (
        select(Inspection, OrderLine.price, CatalogItem.category, Return.sku)
        .outerjoin(Return, Return.id == Inspection.return_id)
        .outerjoin(
            OrderLine, (OrderLine.order_id == Return.order_id) & (OrderLine.sku == Return.sku)
        )
        .outerjoin(CatalogItem, CatalogItem.sku == Return.sku)
        .where(Inspection.review_status == "pending")
    )
    stmt = stmt.order_by(
        OrderLine.price.desc().nulls_last() if sort == "value" else Inspection.created_at,
        Inspection.id,
    )
    return [
        QueueItemOut(
            subject_type="inspection",
            subject_id=ins.id,
            created_at=ins.created_at,
            value=float(price or 0.0),
            grade=ins.grade,
            confidence=ins.confidence,
            flags=[f["code"] for f in ins.flags if f.get("effect") != "note"],
            channel=ins.channel,
            sku=sku,
            category=category,
            photo_ids=list(ins.photo_ids),
        )
        for ins, price, category, sku in s.execute(stmt.limit(limit)).all()
    ]


def audit_history(
    svc: ReturnLensService, subject_type: str, subject_id: str
) -> list[AuditEntryOut]:
    with svc.db.read() as s:
        return [
            AuditEntryOut.model_validate(r) for r in repo.audit_rows(s, subject_type, subject_id)
        ]


def close_return(svc: ReturnLensService, return_id: str, *, reviewer: str, reason: str) -> str:
    """Close a finished return (resolved, rejected or expired: the statuses the lifecycle
    lets become ``closed``; anything else is its 409); its status."""
    now = svc.now()
    with svc.db.write() as s:
        ret = repo.require_return(s, return_id, lock=True)
        lifecycle.move(s, ret, "closed", actor=f"reviewer:{reviewer}", why=reason, now=now)
        return ret.status
