"""The dashboard's reviewer chart: workload, queue age and agreement with the model.

A verdict belongs to a return directly (``reviews.return_id``) or through the inspection
it judged (``inspections.return_id``); either way the return decides whether the filter
selects it, so a verdict on an inspection no return was matched to is not counted.

Agreement follows ``serving/services/review_stats.py``: ``approve`` keeps the model's
grade, ``correct`` keeps it unless it names another grade, ``reject`` says nothing about
the grade and is left out. The model's grade is the inspection's for a verdict on an
inspection, and the return's latest decision's for a verdict on a return (a verdict
writes no decision, so that is the grade the reviewer saw unless the shopper uploaded
again afterwards).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, case, func, or_, select
from sqlalchemy.orm import Session

from serving.services import ops
from serving.services.ops import OpsFilter
from serving.storage.tables import Inspection, Return, Review

VERDICTS = ("approve", "reject", "correct")


def _subject_return() -> ColumnElement[str | None]:
    return func.coalesce(Review.return_id, Inspection.return_id)


def workload(s: Session, f: OpsFilter) -> list[ops.ReviewerLoad]:
    """Verdicts per reviewer and kind, busiest reviewer first."""
    stmt = (
        select(Review.reviewer, Review.verdict, func.count())
        .outerjoin(Inspection, Inspection.id == Review.inspection_id)
        .join(Return, Return.id == _subject_return())
        .where(*ops.where(f))
        .group_by(Review.reviewer, Review.verdict)
    )
    per: dict[str, dict[str, int]] = {}
    for reviewer, verdict, n in s.execute(stmt):
        per.setdefault(reviewer, dict.fromkeys(VERDICTS, 0))[verdict] = n
    rows = [ops.ReviewerLoad(reviewer=r, **v, total=sum(v.values())) for r, v in per.items()]
    return sorted(rows, key=lambda r: (-r.total, r.reviewer))


def _band(column: SQLColumnExpression[datetime], now: datetime) -> ColumnElement[str]:
    """The age band of a waiting item (the bounds are bound parameters: portable)."""
    whens = [(column > now - timedelta(hours=h), label) for h, label in ops.AGE_BANDS]
    return case(*whens, else_=ops.OVER_AGE)


def queue_age(s: Session, f: OpsFilter, now: datetime) -> list[ops.QueueAge]:
    """Returns waiting for review (since their last status change) and inspections
    held for review (since they were made), by age band."""
    returns_band = _band(Return.updated_at, now)
    waiting_returns = (
        select(returns_band, func.count())
        .where(*ops.where(f), Return.status == "needs_review")
        .group_by(returns_band)
    )
    inspections_band = _band(Inspection.created_at, now)
    held = (
        select(inspections_band, func.count())
        .join(Return, Return.id == Inspection.return_id)
        .where(*ops.where(f), Inspection.review_status == "pending")
        .group_by(inspections_band)
    )
    returns: dict[str, int] = {band: n for band, n in s.execute(waiting_returns)}
    inspections: dict[str, int] = {band: n for band, n in s.execute(held)}
    labels = [label for _, label in ops.AGE_BANDS] + [ops.OVER_AGE]
    return [
        ops.QueueAge(band=b, returns=returns.get(b, 0), inspections=inspections.get(b, 0))
        for b in labels
    ]


def agreement(s: Session, f: OpsFilter) -> list[ops.GradeAgreement]:
    """Per model grade: verdicts compared with it, and how many kept it."""
    model = case((Review.subject_type == "inspection", Inspection.grade), else_=Return.latest_grade)
    kept = or_(
        Review.verdict == "approve",
        and_(Review.verdict == "correct", or_(Review.grade.is_(None), Review.grade == model)),
    )
    agree = func.sum(case((kept, 1), else_=0))
    stmt = (
        select(model, func.count(), agree)
        .outerjoin(Inspection, Inspection.id == Review.inspection_id)
        .join(Return, Return.id == _subject_return())
        .where(*ops.where(f), Review.verdict != "reject", model.is_not(None))
        .group_by(model)
        .order_by(model)
    )
    return [
        ops.GradeAgreement(grade=g, n=n, agree=int(a), rate=ops.rate(int(a), n))
        for g, n, a in s.execute(stmt)
    ]
