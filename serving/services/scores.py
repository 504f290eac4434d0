"""Model outputs <-> the JSON stored with each photo, grading and decision."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from serving.policy.types import Scores
from vision.card import ModelCard
from vision.types import PhotoScores

_DIGITS = 6


def _r(x: float) -> float:
    return round(float(x), _DIGITS)


def rounded_list(values: np.ndarray) -> list[float]:
    """``[_r(v) for v in values]`` for a float32 vector (an embedding), at a twentieth of
    the cost: numpy rounds the float64 copies to the same values (no float32 lies half-way
    at six decimals; checked on two million), and a 1280-long list took 0.45 ms."""
    return list(np.round(np.asarray(values, np.float64), _DIGITS).tolist())


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
        "embedding": rounded_list(scores.embedding),
        "damage_cam": np.round(scores.damage_cam.astype(np.float64), 4).tolist(),
        # null for both: the model has no unfamiliarity score (it cannot tell). Stored, so
        # a later upload's decision re-reads the verdict instead of losing it.
        "unfamiliarity": None if scores.unfamiliarity is None else _r(scores.unfamiliarity),
        "familiar": scores.familiar,
    }


def photo_scores_from_json(
    data: dict[str, Any], grade_labels: Sequence[str], damage_labels: Sequence[str]
) -> PhotoScores:
    return PhotoScores(
        grade_probs=np.array([data["grade_probs"][k] for k in grade_labels], np.float32),
        damage_probs=np.array([data["damage_probs"][k] for k in damage_labels], np.float32),
        embedding=np.array(data["embedding"], np.float32),
        damage_cam=np.array(data.get("damage_cam") or [], np.float32),
        unfamiliarity=data.get("unfamiliarity"),
        familiar=data.get("familiar"),
    )


def policy_scores(
    card: ModelCard,
    grade_probs: Mapping[str, float],
    damage_probs: Mapping[str, float],
    *,
    certain: str | None = None,
    fallback: str | None = None,
) -> Scores | None:
    """Stored probabilities as the policy's ``Scores``, in the card's label order.

    ``certain``: a person's grade, probability 1. Stored grade probabilities that do not
    sum to 1 (a decision carried by earlier photos stores none) become ``fallback``,
    certain; None when there is no fallback either.
    """
    grade = certain
    probs = {g: float(grade_probs.get(g, 0.0)) for g in card.grade_labels}
    if grade is None and abs(sum(probs.values()) - 1.0) > 0.01:
        if fallback is None:
            return None
        grade = fallback
    if grade is not None:
        probs = {g: float(g == grade) for g in card.grade_labels}
    damage = {d: float(damage_probs.get(d, 0.0)) for d in card.damage_labels}
    return Scores(card.grade_labels, probs, damage)
