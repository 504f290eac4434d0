"""Combine 1-6 photos of one item into item-level scores.

Damage seen in any one view is real, so the item is as bad as its worst view: for the
ordinal grade we take, for each k, P(grade >= k) as the maximum over photos and turn
the cumulative curve back into a distribution; damage probabilities take the maximum.
Averaging would let five clean views hide the one that shows the crack.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vision.types import ItemScores, PhotoScores


def worst_view_grade(grade_probs: np.ndarray) -> np.ndarray:
    """[P,G] per-photo distributions -> [G] distribution of the worst view."""
    if grade_probs.shape[0] == 1:
        return grade_probs[0].astype(np.float32)
    # tail[k] = P(grade >= k); tail[0] == 1 for every photo.
    tails = np.cumsum(grade_probs[:, ::-1], axis=1)[:, ::-1]
    tail = tails.max(axis=0)
    tail[0] = 1.0
    probs = tail - np.append(tail[1:], 0.0)
    probs = np.clip(probs, 0.0, None)
    return (probs / probs.sum()).astype(np.float32)


def aggregate(
    scores: Sequence[PhotoScores], grade_labels: Sequence[str], damage_labels: Sequence[str]
) -> ItemScores:
    if not scores:
        raise ValueError("aggregate needs at least one photo")
    grade = worst_view_grade(np.stack([s.grade_probs for s in scores]))
    damage = np.stack([s.damage_probs for s in scores]).max(axis=0).astype(np.float32)
    emb = np.stack([s.embedding for s in scores]).mean(axis=0)
    norm = float(np.linalg.norm(emb))
    emb = (emb / norm if norm > 0 else emb).astype(np.float32)
    return ItemScores(
        grade_labels=tuple(grade_labels),
        damage_labels=tuple(damage_labels),
        grade_probs=grade,
        damage_probs=damage,
        embedding=emb,
        per_photo=tuple(scores),
    )


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))
