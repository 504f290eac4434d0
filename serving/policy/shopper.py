"""The shopper decision: approved | retake | needs_review | rejected, with flags.

Flag codes are API surface (stored, counted in metrics, shown to reviewers); keep them
stable. Each flag carries an ``effect`` and its numbers in ``evidence``.

=========================== ======== ==================================================
code                        effect   fires when
=========================== ======== ==================================================
outside_return_window       reject   ``now`` > delivered_at + return_window_days (the
                                     exact boundary is still inside the window)
non_returnable_category     reject   the category is not returnable, or not for this
                                     reason (``non_returnable_reasons``)
non_returnable_condition    per rule a category rule for this reason matches: P(grade in
                                     rule.grades) >= rule.min_prob, or a rule damage label
                                     >= damage_uncertain.high. ``reject`` is downgraded to
                                     review when the model is unsure (low_confidence)
photo_quality               retake   fewer usable photos than quality.min_usable_photos;
                            review   ... the same after quality.max_retakes retakes;
                            note     some photos failed but enough are usable
missing_views               retake   a view the category asks for (``views``) has no
                            review   usable photo; review after quality.max_retakes
                                     retakes (``serving.policy.views``)
wrong_item                  review   similarity to the SKU's reference < min_similarity
no_reference_photo          per rule the SKU has no reference photo (wrong_item.no_reference)
unfamiliar_photo            review   a scored photo lies outside the model's training world
model_cannot_tell           review   the model has no unfamiliarity score (older model)
reused_photo                review   pHash distance to another return's photo
                                     <= reused_photo.max_hamming, or an edited copy of
                                     one: copy-detection agreement
                                     >= reused_photo.min_agreement (``vision.copydetect``)
catalog_photo               per rule a photo is a (near-)copy of a catalog reference
                                     photo, of this SKU or another: agreement
                                     >= catalog_photo.min_agreement (catalog_photo.effect)
reason_condition_mismatch   per      the reason's expectation (``reasons``) is
                            reason   contradicted: "intact" but damaged (P(grade at or
                                     worse than damaged_from_grade) >= min_prob, or a
                                     counted damage >= high); "damaged" but pristine
                                     (P(pristine_grades) >= min_prob and every counted
                                     damage < low); "different_item" but the photo matches
                                     the SKU (similarity >= min_similarity). Shipped:
                                     review, except ``defective`` -> note, because
                                     functional faults are often invisible
high_value                  review   price >= the category's high_value
repeat_returner             review   returns in repeat_returner.window_days (this one
                                     included) >= min_returns, or rejected returns
                                     >= min_rejected
low_confidence              review   top grade probability < min_grade_confidence, or a
                                     damage probability in [low, high): abstain
=========================== ======== ==================================================

Outcome precedence: any reject flag -> ``rejected``; else any retake -> ``retake``; else
any review -> ``needs_review``; else ``approved`` (notes never change the outcome).
Checks that read the model's output (condition, reason, confidence, wrong item) run only
when enough photos passed the quality gate. On an unfamiliar item, or with a model that
cannot tell (``serving.policy.trust``), the engine abstains: the checks that read the
grade do not run, so the item is never approved or refused on its grade; the window and
category rules, which do not read it, still apply. The shopper sentence never reveals a
fraud signal: every review outcome reads the same to the shopper, except an abstention,
which says plainly that a person will grade the photos.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from serving.policy import trust, views
from serving.policy.config import CategoryPolicy, Policy
from serving.policy.types import (
    Flag,
    Outcome,
    PolicyInputError,
    ReturnContext,
    Scores,
    ShopperDecision,
)

APPROVED_MESSAGE = "Good news: your return is approved and you can send the item back."
REVIEW_MESSAGE = (
    "Thanks, our team will take a quick look at your photos and let you know the result soon."
)
UNFAMILIAR_MESSAGE = (
    "We could not grade your photos automatically, so a member of our team will look at "
    "them and let you know the result soon."
)
CANNOT_TELL_MESSAGE = (
    "Our automatic photo check is not available right now, so a member of our team will "
    "look at your photos and let you know the result soon."
)
_ABSTAIN_MESSAGES = {
    "unfamiliar_photo": UNFAMILIAR_MESSAGE,
    "model_cannot_tell": CANNOT_TELL_MESSAGE,
}
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def decide_return(policy: Policy, ctx: ReturnContext) -> ShopperDecision:
    """Decide a shopper's return from the facts in ``ctx``; pure and deterministic."""
    usable = sum(1 for p in ctx.photos if p.passed)
    scored = usable >= policy.spec.quality.min_usable_photos
    if scored and ctx.scores is not None:  # the rules in the model's own names
        policy = policy.fitted_to(ctx.scores.grade_labels, ctx.scores.damage_labels)
    cat_name, cat = policy.category(ctx.category)
    flags = [*_window(cat, cat_name, ctx), *_category(cat, cat_name, ctx), *_quality(policy, ctx)]
    flags += views.missing_views(cat.views, policy.spec.quality.max_retakes, ctx)
    scores = ctx.scores if scored else None
    if scored:
        if ctx.scores is None:
            raise PolicyInputError("scores are required once a photo passed the quality gate")
        scores = ctx.scores
        abstain = trust.familiarity(scores)
        if abstain:  # the grade is a guess: nothing below may decide on it
            flags += abstain
        else:
            unsure = _low_confidence(policy, scores)
            flags += _conditions(policy, cat, cat_name, ctx, scores, confident=not unsure)
            flags += _reason(policy, ctx, scores)
            flags += unsure
        flags += trust.wrong_item(policy, ctx.sku, ctx.similarity)
        flags += trust.no_reference(policy, ctx.sku, ctx.has_reference)
    flags += [*_reused(policy, ctx), *_catalog_photo(policy, ctx)]
    flags += [*_high_value(cat, cat_name, ctx), *_repeat(policy, ctx)]
    outcome = outcome_for(flags)
    return ShopperDecision(
        outcome=outcome,
        flags=tuple(flags),
        shopper_message=shopper_message(outcome, flags),
        grade=scores.grade if scores else None,
        confidence=round(scores.confidence, 6) if scores else None,
        policy_version=policy.version,
        category_policy=cat_name,
    )


def outcome_for(flags: list[Flag]) -> Outcome:
    """rejected > retake > needs_review > approved."""
    effects = {f.effect for f in flags}
    if "reject" in effects:
        return "rejected"
    if "retake" in effects:
        return "retake"
    return "needs_review" if "review" in effects else "approved"


def shopper_message(outcome: Outcome, flags: list[Flag]) -> str:
    """One plain sentence for the shopper, without jargon or fraud signals."""
    if outcome == "approved":
        return APPROVED_MESSAGE
    if outcome == "needs_review":
        abstained = [f.code for f in flags if f.code in _ABSTAIN_MESSAGES]
        return _ABSTAIN_MESSAGES[abstained[0]] if abstained else REVIEW_MESSAGE
    if outcome == "retake":
        flag = next(f for f in flags if f.effect == "retake")
        return _retake_sentence(flag)
    flag = next(f for f in flags if f.effect == "reject")
    ev = flag.evidence
    if flag.code == "outside_return_window":
        return (
            f"Sorry, the {ev['return_window_days']}-day return window for this item "
            f"closed on {ev['deadline_text']}, so it can't be returned."
        )
    if flag.code == "non_returnable_category":
        if ev.get("reason_blocked"):
            return "Sorry, this type of item can't be returned for the reason you chose."
        return "Sorry, this type of item can't be returned."
    return str(
        ev.get("note")
        or "Sorry, this item can't be returned in its current condition for the reason you chose."
    )


def _retake_sentence(flag: Flag) -> str:
    if flag.code == "missing_views":
        return views.missing_sentence(flag.evidence["missing_prompts"])
    advice: list[str] = []
    for photo in flag.evidence.get("photos", []):
        for issue in photo["issues"]:
            text = issue["message"].strip().rstrip(".")
            text = text[:1].lower() + text[1:] if text[1:2].islower() else text
            if text and text not in advice:
                advice.append(text)
    if not flag.evidence.get("photos"):
        return "Please add a photo of the whole item in good light."
    if not advice:
        return "Please take your photos again in good light with the whole item in view."
    return f"Please take your photos again: {'; '.join(advice)}."


def _date_text(moment: datetime) -> str:
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}"


def _window(cat: CategoryPolicy, cat_name: str, ctx: ReturnContext) -> list[Flag]:
    deadline = ctx.delivered_at + timedelta(days=cat.return_window_days)
    if ctx.now <= deadline:
        return []
    days = (ctx.now - ctx.delivered_at).total_seconds() / 86400.0
    return [
        Flag(
            "outside_return_window",
            f"Delivered {days:.1f} days ago; the return window for {cat_name!r} is "
            f"{cat.return_window_days} days and closed at {deadline.isoformat()}.",
            "reject",
            {
                "delivered_at": ctx.delivered_at.isoformat(),
                "deadline": deadline.isoformat(),
                "deadline_text": _date_text(deadline),
                "days_since_delivery": round(days, 3),
                "return_window_days": cat.return_window_days,
            },
        )
    ]


def _category(cat: CategoryPolicy, cat_name: str, ctx: ReturnContext) -> list[Flag]:
    evidence = {"category": ctx.category, "category_policy": cat_name, "reason": ctx.reason}
    if not cat.returnable:
        return [
            Flag(
                "non_returnable_category",
                f"Category {cat_name!r} is not returnable.",
                "reject",
                {**evidence, "reason_blocked": False},
            )
        ]
    if ctx.reason in cat.non_returnable_reasons:
        return [
            Flag(
                "non_returnable_category",
                f"Category {cat_name!r} cannot be returned for the reason {ctx.reason!r}.",
                "reject",
                {**evidence, "reason_blocked": True},
            )
        ]
    return []


def _quality(policy: Policy, ctx: ReturnContext) -> list[Flag]:
    rule = policy.spec.quality
    usable = sum(1 for p in ctx.photos if p.passed)
    failed = [p for p in ctx.photos if not p.passed]
    evidence = {
        "usable_photos": usable,
        "photos_uploaded": len(ctx.photos),
        "min_usable_photos": rule.min_usable_photos,
        "previous_retakes": ctx.previous_retakes,
        "max_retakes": rule.max_retakes,
        "photos": [
            {
                "photo_id": p.photo_id,
                "issues": [{"check": i.check, "message": i.message} for i in p.issues],
            }
            for p in failed
        ],
    }
    checks = sorted({i.check for p in failed for i in p.issues})
    what = f": {', '.join(checks)}" if checks else ""
    if usable >= rule.min_usable_photos:
        if not failed:
            return []
        return [
            Flag(
                "photo_quality",
                f"Some photos failed the quality gate ({len(failed)} of {len(ctx.photos)}"
                f"{what}); the decision uses the usable ones.",
                "note",
                evidence,
            )
        ]
    if ctx.previous_retakes >= rule.max_retakes:
        return [
            Flag(
                "photo_quality",
                f"Still not enough usable photos after {ctx.previous_retakes} retakes "
                f"({usable} of {rule.min_usable_photos} needed{what}); a person should look.",
                "review",
                evidence,
            )
        ]
    return [
        Flag(
            "photo_quality",
            f"Not enough usable photos ({usable} of {rule.min_usable_photos} needed{what}); "
            "asking the shopper to retake.",
            "retake",
            evidence,
        )
    ]


def _low_confidence(policy: Policy, scores: Scores) -> list[Flag]:
    conf = policy.spec.confidence
    band = conf.damage_uncertain
    unsure = {d: round(p, 4) for d, p in scores.damage_probs.items() if band.low <= p < band.high}
    low_grade = scores.confidence < conf.min_grade_confidence
    if not low_grade and not unsure:
        return []
    parts = []
    if low_grade:
        parts.append(
            f"grade {scores.grade} at {scores.confidence:.2f} < {conf.min_grade_confidence:.2f}"
        )
    if unsure:
        parts.append(
            f"unsure damage {', '.join(f'{d} {p:.2f}' for d, p in unsure.items())} "
            f"in [{band.low:.2f}, {band.high:.2f})"
        )
    return [
        Flag(
            "low_confidence",
            f"The model is not sure: {'; '.join(parts)}.",
            "review",
            {
                "grade": scores.grade,
                "confidence": round(scores.confidence, 4),
                "min_grade_confidence": conf.min_grade_confidence,
                "uncertain_damage": unsure,
                "damage_band": [band.low, band.high],
            },
        )
    ]


def _conditions(
    policy: Policy,
    cat: CategoryPolicy,
    cat_name: str,
    ctx: ReturnContext,
    scores: Scores,
    *,
    confident: bool,
) -> list[Flag]:
    high = policy.spec.confidence.damage_uncertain.high
    flags = []
    for index, rule in enumerate(cat.non_returnable):
        if rule.reasons is not None and ctx.reason not in rule.reasons:
            continue
        mass = scores.mass(rule.grades)
        present = {
            d: round(scores.damage_probs[d], 4)
            for d in rule.damage
            if scores.damage_probs[d] >= high
        }
        by_grade = bool(rule.grades) and mass >= rule.min_prob
        if not by_grade and not present:
            continue
        effect = rule.action if confident else "review"
        seen = [f"grade {'/'.join(rule.grades)} (p={mass:.2f})"] if by_grade else []
        seen += [f"{d} (p={p:.2f})" for d, p in present.items()]
        flags.append(
            Flag(
                "non_returnable_condition",
                f"Category {cat_name!r} does not take back items with {' or '.join(seen)} "
                f"for the reason {ctx.reason!r}.",
                effect,
                {
                    "rule": index,
                    "reason": ctx.reason,
                    "grades": list(rule.grades),
                    "grade_mass": round(mass, 4),
                    "min_prob": rule.min_prob,
                    "damage_present": present,
                    "damage_threshold": high,
                    "action": rule.action,
                    "downgraded_to_review": rule.action == "reject" and not confident,
                    "note": rule.note,
                },
            )
        )
    return flags


def _reason(policy: Policy, ctx: ReturnContext, scores: Scores) -> list[Flag]:
    rule, cond = policy.reasons[ctx.reason], policy.spec.condition
    band = policy.spec.confidence.damage_uncertain
    counted = {d: p for d, p in scores.damage_probs.items() if d not in cond.ignore_damage}
    evidence: dict[str, object] = {"reason": ctx.reason, "expects": rule.expects}
    if rule.expects == "intact":
        worse = scores.grade_labels[scores.index(cond.damaged_from_grade) :]
        mass = scores.mass(worse)
        present = {d: round(p, 4) for d, p in counted.items() if p >= band.high}
        if mass < cond.min_prob and not present:
            return []
        evidence |= {
            "damaged_grades": list(worse),
            "damaged_mass": round(mass, 4),
            "min_prob": cond.min_prob,
            "damage_present": present,
        }
        seen = f"P({cond.damaged_from_grade} or worse) = {mass:.2f}" + "".join(
            f", {d} {p:.2f}" for d, p in present.items()
        )
        text = f"implies an intact item, but the photos show damage ({seen})"
    elif rule.expects == "damaged":
        mass = scores.mass(cond.pristine_grades)
        worst = max(counted.values(), default=0.0)
        if mass < cond.min_prob or worst >= band.low:
            return []
        evidence |= {
            "pristine_grades": list(cond.pristine_grades),
            "pristine_mass": round(mass, 4),
            "min_prob": cond.min_prob,
            "max_damage": round(worst, 4),
            "damage_absent_below": band.low,
        }
        text = (
            f"implies visible damage, but the item looks pristine "
            f"(P({'/'.join(cond.pristine_grades)}) = {mass:.2f}, no damage >= {band.low:.2f})"
        )
    elif rule.expects == "different_item":
        limit = policy.spec.wrong_item.min_similarity
        if ctx.similarity is None or ctx.similarity < limit:
            return []
        evidence |= {"similarity": round(ctx.similarity, 4), "min_similarity": limit}
        text = (
            f"says a different item arrived, but the photos match the ordered SKU "
            f"(similarity {ctx.similarity:.2f} >= {limit:.2f})"
        )
    else:
        return []
    return [
        Flag(
            "reason_condition_mismatch",
            f"The reason {ctx.reason!r} {text}.",
            rule.on_mismatch,
            evidence,
        )
    ]


def _reused(policy: Policy, ctx: ReturnContext) -> list[Flag]:
    """pHash first (an exact or near-exact copy); else the copy-detection signal (an
    edited copy: cropped, rotated, recoloured, recompressed, framed, screenshotted)."""
    rule, hit, copy = policy.spec.reused_photo, ctx.reused_photo, ctx.copied_photo
    if hit is not None and hit.distance <= rule.max_hamming:
        evidence: dict[str, Any] = {
            "distance": hit.distance,
            "max_hamming": rule.max_hamming,
            "other_return_id": hit.other_return_id,
            "other_photo_id": hit.other_photo_id,
        }
        if hit.photo_id is not None:
            evidence |= {"photo_id": hit.photo_id, "signal": "phash"}
        text = f"{hit.distance} bits from a photo of return {hit.other_return_id} (limit "
        return [Flag("reused_photo", f"A photo is {text}{rule.max_hamming}).", "review", evidence)]
    if copy is None or copy.score < rule.min_agreement:
        return []
    return [
        Flag(
            "reused_photo",
            f"A photo is an edited copy of a photo of return {copy.other_return_id} "
            f"(aligned, {copy.score:.0%} of it agrees; at least {rule.min_agreement:.0%}).",
            "review",
            {
                "signal": "copy_agreement",
                "score": copy.score,
                "threshold": rule.min_agreement,
                "photo_id": copy.photo_id,
                "other_return_id": copy.other_return_id,
                "other_photo_id": copy.other_photo_id,
            },
        )
    ]


def _catalog_photo(policy: Policy, ctx: ReturnContext) -> list[Flag]:
    rule, copy = policy.spec.catalog_photo, ctx.catalog_copy
    if copy is None or copy.score < rule.min_agreement:
        return []
    whose = "this item's" if copy.sku == ctx.sku else f"SKU {copy.sku}'s"
    return [
        Flag(
            "catalog_photo",
            f"A photo is a copy of {whose} catalog reference photo (aligned, "
            f"{copy.score:.0%} of it agrees; at least {rule.min_agreement:.0%}).",
            rule.effect,
            {
                "signal": "copy_agreement",
                "photo_id": copy.photo_id,
                "other_photo_id": copy.other_photo_id,
                "sku": copy.sku,
                "score": copy.score,
                "threshold": rule.min_agreement,
            },
        )
    ]


def _high_value(cat: CategoryPolicy, cat_name: str, ctx: ReturnContext) -> list[Flag]:
    if cat.high_value is None or ctx.price < cat.high_value:
        return []
    return [
        Flag(
            "high_value",
            f"Price {ctx.price:.2f} is at or above the {cat_name!r} high-value "
            f"threshold {cat.high_value:.2f}.",
            "review",
            {"price": ctx.price, "high_value": cat.high_value},
        )
    ]


def _repeat(policy: Policy, ctx: ReturnContext) -> list[Flag]:
    rule, hist = policy.spec.repeat_returner, ctx.history
    window = timedelta(days=rule.window_days)
    count = 1 + sum(1 for t in hist.return_times if timedelta(0) <= ctx.now - t <= window)
    many = count >= rule.min_returns
    rejected = rule.min_rejected is not None and hist.rejected_returns >= rule.min_rejected
    if not many and not rejected:
        return []
    parts = (
        [f"{count} returns in {rule.window_days} days (limit {rule.min_returns})"] if many else []
    )
    parts += [f"{hist.rejected_returns} earlier rejected returns"] if rejected else []
    return [
        Flag(
            "repeat_returner",
            f"Repeat returner: {'; '.join(parts)}.",
            "review",
            {
                "returns_in_window": count,
                "window_days": rule.window_days,
                "min_returns": rule.min_returns,
                "rejected_returns": hist.rejected_returns,
                "min_rejected": rule.min_rejected,
            },
        )
    ]
