"""Rows -> frozen views, and model outputs <-> the JSON stored with each photo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from serving.services.views import DecisionView, InspectionView, PhotoView, ReviewView
from serving.storage.label_order import stored_label_order
from serving.storage.tables import Decision, Inspection, Photo, Review
from vision.types import PhotoScores

_DIGITS = 6


def _r(x: float) -> float:
    return round(float(x), _DIGITS)


def probs_dict(labels: Sequence[str], values: np.ndarray) -> dict[str, float]:
    return {k: _r(v) for k, v in zip(labels, values, strict=True)}


def photo_scores_json(
    scores: PhotoScores,
    grade_labels: Sequence[str],
    damage_labels: Sequence[str],
    model_version: str,
) -> dict[str, Any]:
    """Everything needed to explain, re-aggregate and draw heatmaps without the model.

    The label lists are stored explicitly because the rows of ``damage_cam`` follow the
    model's damage order and a JSON object's key order is not kept everywhere
    (PostgreSQL JSONB sorts keys by length, then bytes).
    """
    return {
        "model_version": model_version,
        "grade_labels": list(grade_labels),
        "damage_labels": list(damage_labels),
        "grade_probs": probs_dict(grade_labels, scores.grade_probs),
        "damage_probs": probs_dict(damage_labels, scores.damage_probs),
        "embedding": [_r(v) for v in scores.embedding],
        "damage_cam": np.round(scores.damage_cam.astype(np.float64), 4).tolist(),
    }


def photo_scores_from_json(
    data: dict[str, Any], grade_labels: Sequence[str], damage_labels: Sequence[str]
) -> PhotoScores:
    return PhotoScores(
        grade_probs=np.array([data["grade_probs"][k] for k in grade_labels], np.float32),
        damage_probs=np.array([data["damage_probs"][k] for k in damage_labels], np.float32),
        embedding=np.array(data["embedding"], np.float32),
        damage_cam=np.array(data.get("damage_cam") or [], np.float32),
    )


def _ordered(probs: dict[str, float], order: Sequence[str] | None) -> dict[str, float]:
    return {k: probs[k] for k in order} if order is not None else dict(probs)


def photo_view(row: Photo) -> PhotoView:
    grade_probs = _ordered(
        row.scores.get("grade_probs") or {}, stored_label_order(row.scores, kind="grade")
    )
    damage_order = stored_label_order(row.scores)
    damage_probs = _ordered(row.scores.get("damage_probs") or {}, damage_order)
    grade = max(grade_probs, key=lambda k: grade_probs[k]) if grade_probs else None
    labels = ("grade", *damage_probs) if row.scores.get("damage_cam") else ()
    return PhotoView(
        photo_id=row.id,
        digest=row.digest,
        index=row.position,
        quality=dict(row.quality),
        grade=grade,
        grade_probs=grade_probs,
        damage_probs=damage_probs,
        heatmap_labels=tuple(labels),
    )


def decision_view(row: Decision) -> DecisionView:
    return DecisionView(
        decision_id=row.id,
        outcome=row.outcome,
        flags=list(row.flags),
        grade=row.grade,
        confidence=row.confidence,
        grade_probs=dict(row.grade_probs),
        damage_probs=dict(row.damage_probs),
        shopper_message=row.shopper_message,
        model_version=row.model_version,
        policy_version=row.policy_version,
        created_at=row.created_at,
        photo_ids=tuple(row.photo_ids),
        sequence=row.sequence,
    )


def inspection_view(row: Inspection, *, replayed: bool = False) -> InspectionView:
    return InspectionView(
        inspection_id=row.id,
        return_id=row.return_id,
        status=row.status,
        grade=row.grade,
        grade_probs=dict(row.grade_probs),
        damage_probs=dict(row.damage_probs),
        tier=row.tier,
        markdown=row.markdown,
        channel=row.channel,
        expected_recovery=row.expected_recovery,
        alternatives=list(row.alternatives),
        flags=list(row.flags),
        needs_review=row.needs_review,
        model_version=row.model_version,
        policy_version=row.policy_version,
        created_at=row.created_at,
        photo_ids=tuple(row.photo_ids),
        replayed=replayed,
        claimed_return_id=row.claimed_return_id,
        station_id=row.station_id,
        shopper_grade=row.shopper_grade,
    )


def review_view(row: Review) -> ReviewView:
    return ReviewView(
        review_id=row.id,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        reviewer=row.reviewer,
        verdict=row.verdict,
        grade=row.grade,
        damage=tuple(row.damage) if row.damage is not None else None,
        note=row.note,
        created_at=row.created_at,
    )
