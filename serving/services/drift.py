"""Live drift of the serving model: the latest stored photos against the card's reference.

The window is read from the database, not from process memory: the database is the one
store every worker (and every replica) shares, so ``/metrics``, ``GET /v1/admin/drift``
and ``returnlens drift`` give the same numbers whichever process answers. It holds those
of the latest ``window`` shopper and dock photos that the serving model's version graded
(a photo graded by an earlier model says nothing about this one; the version sits inside
the JSON scores, so it is filtered here, portably, not in SQL). Photos that failed the
quality gate count too (the model scores every photo): a darker stream of photos is
drift even when the gate stops it.

The input measures come from the stored quality report, whose checks carry the raw
measure as ``value`` (``blur``: sharpness, ``underexposed``: brightness, the same
numbers as ``vision.quality.measure``); the long side is the photo's original size.
The statistics themselves are ``vision/drift.py``'s, shared with the reference fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from serving.domain_errors import NotFound
from serving.services.service import ReturnLensService
from serving.storage.db import Database
from serving.storage.tables import Photo
from vision.card import ModelCard
from vision.drift import DriftReport, Observation, compare, observation_of

DEFAULT_WINDOW = 1000
ROLES = ("shopper", "dock")


def observation(
    quality: dict[str, Any],
    scores: dict[str, Any],
    long_side: int,
    grade_labels: Sequence[str],
    damage_labels: Sequence[str],
) -> Observation:
    """One stored photo as a drift observation (scores without the labels: input only)."""
    grade = scores.get("grade_probs") or {}
    damage = scores.get("damage_probs") or {}
    graded = all(k in grade for k in grade_labels) and all(k in damage for k in damage_labels)
    if not graded:
        return observation_of(quality.get("checks", ()), long_side)
    return observation_of(
        quality.get("checks", ()),
        long_side,
        [grade[k] for k in grade_labels],
        [damage[k] for k in damage_labels],
        scores.get("unfamiliarity"),
        scores.get("familiar"),
    )


def window_observations(
    db: Database, card: ModelCard, window: int = DEFAULT_WINDOW
) -> list[Observation]:
    """Of the latest ``window`` shopper and dock photos, those ``card``'s model graded."""
    with db.read() as s:
        rows = s.execute(
            select(Photo.quality, Photo.scores, Photo.original_width, Photo.original_height)
            .where(Photo.role.in_(ROLES))
            .order_by(Photo.created_at.desc(), Photo.id.desc())
            .limit(window)
        ).all()
    return [
        observation(q, sc, max(w, h), card.grade_labels, card.damage_labels)
        for q, sc, w, h in rows
        if (sc or {}).get("model_version") in (None, card.model_version)
    ]


def drift_report(svc: ReturnLensService, window: int = DEFAULT_WINDOW) -> DriftReport:
    """The serving model's drift report; NotFound when its card has no drift reference."""
    return report_for(svc.db, svc.grader.card, window)


def report_for(db: Database, card: ModelCard, window: int = DEFAULT_WINDOW) -> DriftReport:
    """``card``'s drift report over ``db``'s latest photos (``returnlens drift``)."""
    if not card.drift_reference:
        raise NotFound(
            f"model {card.model_version} has no drift reference; fit one with "
            "`returnlens model fit-drift-reference`",
            code="no_drift_reference",
        )
    return compare(
        card.drift_reference,
        window_observations(db, card, window),
        card.grade_labels,
        card.damage_labels,
    )


def drift_gauges(svc: ReturnLensService, window: int = DEFAULT_WINDOW) -> DriftReport | None:
    """The report for ``/metrics``: None (no drift gauges) without a reference."""
    if not svc.grader.card.drift_reference:
        return None
    return drift_report(svc, window)
