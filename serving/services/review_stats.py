"""Reviewer agreement with the model, per grade, computed from the stored rows (the
database is the store every worker shares, so any worker answers the same).

Each stored verdict is compared with the grade the model gave the subject it covers:
for a return, the latest decision made at or before the verdict; for an inspection,
its grade. ``approve`` agrees with the model's grade; ``correct`` names the reviewer's
grade (a correction of damage labels only keeps the model's grade, so it agrees);
``reject`` says nothing about the grade and is only counted. A subject the model could
not grade (no photo passed quality) is left out.

``random_slice`` restricts the comparison to subjects in the queue's current random
slice (``serving/services/review_order.py``): those were queued by chance, not by label
value, so their agreement rate is an unbiased estimate for everything queued, while the
overall rate leans towards the hard cases the ``teach`` order puts first. (No inverse
probability weighting: items reviewed outside the slice are simply not in that figure.)
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import select

from serving.services.service import ReturnLensService
from serving.storage.tables import Decision, Inspection, Review


class AgreementOut(BaseModel):
    n: int = Field(description="Verdicts compared with the model's grade.")
    agree: int = Field(description="Of those, verdicts keeping the model's grade.")
    rate: float | None = Field(description="agree / n (null when n is 0).")


class GradeAgreementOut(AgreementOut):
    grade: str = Field(description="The model's grade.")


class ReviewStatsOut(BaseModel):
    """Reviewer agreement with the model (GET /v1/review/stats)."""

    verdicts: int = Field(description="Every stored verdict.")
    rejected: int = Field(description="Reject verdicts (no grade compared).")
    overall: AgreementOut
    random_slice: AgreementOut = Field(
        description="Only subjects in the queue's random slice: the unbiased estimate."
    )
    per_grade: list[GradeAgreementOut] = Field(
        description="By the model's grade, in the model's label order."
    )
    confusion: dict[str, dict[str, int]] = Field(
        description="Model grade -> reviewer grade -> verdicts."
    )


def _agreement(n: int, agree: int) -> dict[str, object]:
    return {"n": n, "agree": agree, "rate": round(agree / n, 6) if n else None}


def review_stats(svc: ReturnLensService) -> ReviewStatsOut:
    with svc.db.read() as s:
        reviews = s.execute(
            select(
                Review.subject_type,
                Review.subject_id,
                Review.verdict,
                Review.grade,
                Review.created_at,
            ).order_by(Review.created_at, Review.id)
        ).all()
        decisions: dict[str, list[tuple[int, datetime, str | None]]] = defaultdict(list)
        reviewed_returns = select(Review.return_id).where(Review.return_id.is_not(None))
        for rid, seq, at, grade in s.execute(
            select(Decision.return_id, Decision.sequence, Decision.created_at, Decision.grade)
            .where(Decision.return_id.in_(reviewed_returns))
            .order_by(Decision.return_id, Decision.sequence)
        ).all():
            decisions[rid].append((seq, at, grade))
        reviewed_inspections = select(Review.inspection_id).where(Review.inspection_id.is_not(None))
        inspection_grade: dict[str, str | None] = {
            iid: grade
            for iid, grade in s.execute(
                select(Inspection.id, Inspection.grade).where(
                    Inspection.id.in_(reviewed_inspections)
                )
            ).all()
        }

    def model_grade(subject_type: str, subject_id: str, at: datetime) -> str | None:
        if subject_type == "inspection":
            return inspection_grade.get(subject_id)
        rows = decisions.get(subject_id, [])
        before = [g for _, t, g in rows if t <= at]
        return before[-1] if before else (rows[-1][2] if rows else None)

    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rejected = n = agree = rn = ragree = 0
    for subject_type, subject_id, verdict, grade, at in reviews:
        if verdict == "reject":
            rejected += 1
            continue
        model = model_grade(subject_type, subject_id, at)
        if model is None:
            continue
        reviewer = grade if verdict == "correct" and grade is not None else model
        confusion[model][reviewer] += 1
        same = int(reviewer == model)
        n, agree = n + 1, agree + same
        if svc.review_order.in_random_slice(subject_type, subject_id):
            rn, ragree = rn + 1, ragree + same
    labels = list(svc.grader.card.grade_labels)
    order = labels + sorted(g for g in confusion if g not in labels)
    per_grade = [
        {"grade": g, **_agreement(sum(confusion[g].values()), confusion[g].get(g, 0))}
        for g in order
        if g in confusion
    ]
    return ReviewStatsOut.model_validate(
        {
            "verdicts": len(reviews),
            "rejected": rejected,
            "overall": _agreement(n, agree),
            "random_slice": _agreement(rn, ragree),
            "per_grade": per_grade,
            "confusion": {g: dict(confusion[g]) for g in order if g in confusion},
        }
    )
