"""The one place where the service calls the pure policy engine (``serving.policy``).

The service gathers facts from storage and vision; this module turns them into the
engine's frozen inputs and returns its frozen outputs. Nothing here reads a clock, a
database or a file.

``policy_for_model`` is where a policy meets its model, once, when the service is built:
the card's suggested thresholds fill what the YAML left out (``serving.policy.
thresholds``), and the result's version hashes the effective values, so every stored
decision's ``policy_version`` pins the thresholds it was made with.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from serving.policy import (
    CopyMatch,
    CustomerHistory,
    DockContext,
    DockDisposition,
    Flag,
    PhotoQuality,
    Policy,
    ReturnContext,
    ReusedPhoto,
    Scores,
    ShopperDecision,
    decide_disposition,
    decide_return,
)
from vision.card import ModelCard
from vision.types import ItemScores

log = logging.getLogger("returnlens.policy")

# Flags that refuse a return before any photo exists (create_return answers with them).
PRECHECK_CODES = ("outside_return_window", "non_returnable_category")


def check_policy_fits(policy: Policy, card: ModelCard) -> None:
    """Raise ConfigError unless every grade/damage name in the policy is the model's."""
    policy.require_compatible(card.grade_labels, card.damage_labels)


def policy_for_model(policy: Policy, card: ModelCard) -> Policy:
    """The policy in effect for this model: fitted to its labels (``serving.policy.fit``:
    grades matched by name, ``grade_map`` or rank; rules naming damage labels it lacks
    skipped), card thresholds resolved.

    Idempotent: resolution starts from what the YAML wrote, so building a service twice
    from an already-resolved policy gives the same policy and version.
    """
    fitted = policy.fitted_to(card.grade_labels, card.damage_labels)
    if fitted.fit is not None and fitted.fit is not policy.fit:
        log.warning(
            "policy %s fitted to model %s's labels:\n  %s",
            policy.source,
            card.model_version,
            "\n  ".join(fitted.fit.lines()),
        )
    return fitted.for_model(card.thresholds)


def history_window(policy: Policy) -> timedelta:
    """How far back the repeat-returner rule looks."""
    return timedelta(days=policy.spec.repeat_returner.window_days)


def scores_of(item: ItemScores | None) -> Scores | None:
    return Scores.from_item_scores(item) if item is not None else None


def precheck(
    policy: Policy,
    *,
    category: str,
    sku: str,
    price: float,
    reason: str,
    delivered_at: datetime,
    now: datetime,
) -> list[Flag]:
    """Reject flags knowable before any photo: the return window and the category.

    Runs the real engine with no photos and keeps only these flags, so the rule lives in
    the policy alone.
    """
    ctx = ReturnContext(
        category=category,
        sku=sku,
        price=price,
        reason=reason,
        delivered_at=delivered_at,
        now=now,
        photos=(),
    )
    decision = decide_return(policy, ctx)
    return [f for f in decision.flags if f.code in PRECHECK_CODES and f.effect == "reject"]


def shopper_decision(
    policy: Policy,
    *,
    category: str,
    sku: str,
    price: float,
    reason: str,
    delivered_at: datetime,
    now: datetime,
    photos: Sequence[PhotoQuality],
    item: ItemScores | None,
    history_times: Sequence[datetime],
    rejected_returns: int,
    similarity: float | None,
    has_reference: bool,
    reused: tuple[int, str, str] | tuple[int, str, str, str] | None,
    previous_retakes: int,
    copied: CopyMatch | None = None,
    catalog_copy: CopyMatch | None = None,
) -> ShopperDecision:
    """``photos``: the quality verdict of every photo the decision considers;
    ``reused``: (Hamming distance, other return id, other photo id[, new photo id]) of
    the nearest hash; ``copied`` / ``catalog_copy``: the best verified copy-detection
    match among other returns' photos / catalog reference photos;
    ``has_reference``: whether the SKU has a catalog reference photo (the engine flags
    ``no_reference_photo`` when not). Whether the photos are familiar to the model rides
    on ``item`` (``Scores.from_item_scores``)."""
    ctx = ReturnContext(
        category=category,
        sku=sku,
        price=price,
        reason=reason,
        delivered_at=delivered_at,
        now=now,
        photos=tuple(photos),
        scores=scores_of(item),
        history=CustomerHistory(
            return_times=tuple(history_times), rejected_returns=rejected_returns
        ),
        similarity=similarity,
        reused_photo=ReusedPhoto(*reused) if reused else None,
        previous_retakes=previous_retakes,
        has_reference=has_reference,
        copied_photo=copied,
        catalog_copy=catalog_copy,
    )
    return decide_return(policy, ctx)


def dock_disposition(
    policy: Policy,
    *,
    category: str,
    price: float,
    item: ItemScores,
    shopper_grade: str | None,
    quality_passed: bool,
    sku: str,
    similarity: float | None,
    has_reference: bool,
) -> DockDisposition:
    """``similarity``: the dock photos against the SKU's catalog reference (None when the
    SKU has none, ``has_reference`` False): the wrong-item check before any routing."""
    ctx = DockContext(
        category=category,
        price=price,
        scores=Scores.from_item_scores(item),
        shopper_grade=shopper_grade,
        quality_passed=quality_passed,
        sku=sku,
        similarity=similarity,
        has_reference=has_reference,
    )
    return decide_disposition(policy, ctx)


def tier_for(policy: Policy, category: str, grade: str) -> tuple[str, float]:
    """(tier, markdown) of a grade in a category, without pricing (unmatched items)."""
    _, cat = policy.category(category)
    tier = cat.dock.grade_tiers[grade]
    return tier, float(cat.dock.tiers[tier])
