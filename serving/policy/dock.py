"""Dock disposition: grade -> markdown tier -> channel, chosen by expected recovery.

The dock grade is the argmax of the dock camera's grade probabilities; its tier gives the
markdown shown to staff. Each channel of the category is then priced::

    expected_recovery(channel) = price * (1 - m) - cost
    m = sum over grades g of P(g) * tier_markdown(g)   when the channel's markdown is "tier"
    m = the channel's fixed markdown                    otherwise

Using the expected tier markdown (not the argmax's) prices the model's uncertainty into
channels that sell the item in its present condition; fixed-markdown channels (refurbish,
liquidation, recycle, return-to-vendor) realise the same value whatever the grade. A
channel is eligible when it accepts the dock grade (``grades``; none listed = any). The
best eligible channel wins; ties (equal to the cent) go to the lower cost, then to the
channel name in alphabetical order, so the choice never depends on YAML key order.

Flags: ``grade_discrepancy`` (dock grade >= discrepancy.min_grade_gap grades worse than the
shopper-photo grade, counted on the policy's grade ladder (``serving.policy.fit``): transit
damage or misrepresentation; a note when the shopper grade is not one of the model's
grades), ``low_confidence`` (top grade probability below the dock bar),
``photo_quality`` (the dock photos failed the gate), and the checks of
``serving.policy.trust``: ``unfamiliar_photo`` / ``model_cannot_tell`` (the engine
abstains: no discrepancy or confidence check reads the grade), ``wrong_item`` (the item
does not look like the SKU's catalog reference) and ``no_reference_photo``. Review flags
set ``needs_review``; the trust checks with effect review also set ``held``: the item is
not routed to a channel until a person looks, because routing an item that may not be
the ordered one, or whose grade is a guess, is how good items end up in salvage.
"""

from __future__ import annotations

from serving.policy import trust
from serving.policy.config import CategoryPolicy, Policy
from serving.policy.types import ChannelOption, DockContext, DockDisposition, Flag, Scores


def decide_disposition(policy: Policy, ctx: DockContext) -> DockDisposition:
    """Grade, tier, channel and recovery for one item at the dock; pure and deterministic."""
    scores = ctx.scores
    policy = policy.fitted_to(scores.grade_labels, scores.damage_labels)  # model's names
    cat_name, cat = policy.category(ctx.category)
    grade = scores.grade
    tier = cat.dock.grade_tiers[grade]
    options = recovery_table(cat, ctx.price, scores)
    best = options[0]
    abstain = trust.familiarity(scores)
    flags = abstain or [*_discrepancy(policy, ctx), *_low_confidence(policy, scores)]
    if not ctx.quality_passed:
        flags.append(
            Flag(
                "photo_quality",
                "The dock photos failed the quality gate; "
                "check the item by hand or capture it again.",
                "review",
                {"quality_passed": False},
            )
        )
    flags += trust.wrong_item(policy, ctx.sku, ctx.similarity)
    flags += trust.no_reference(policy, ctx.sku, ctx.has_reference)
    return DockDisposition(
        grade=grade,
        confidence=round(scores.confidence, 6),
        tier=tier,
        markdown=cat.dock.tiers[tier],
        channel=best.channel,
        expected_recovery=best.expected_recovery,
        alternatives=options,
        flags=tuple(flags),
        needs_review=any(f.effect == "review" for f in flags),
        policy_version=policy.version,
        category_policy=cat_name,
        held=any(f.effect == "review" and f.code in trust.HOLD_CODES for f in flags),
    )


def recovery_table(cat: CategoryPolicy, price: float, scores: Scores) -> tuple[ChannelOption, ...]:
    """Every channel priced, eligible ones first, best first (the module's formula)."""
    dock = cat.dock
    tier_markdown = sum(p * dock.tiers[dock.grade_tiers[g]] for g, p in scores.grade_probs.items())
    rows = []
    for name, ch in dock.channels.items():
        markdown = tier_markdown if ch.markdown == "tier" else float(ch.markdown)
        rows.append(
            ChannelOption(
                channel=name,
                eligible=ch.grades is None or scores.grade in ch.grades,
                markdown=markdown,
                cost=ch.cost,
                expected_recovery=price * (1.0 - markdown) - ch.cost,
            )
        )
    return tuple(
        sorted(
            rows, key=lambda r: (not r.eligible, -round(r.expected_recovery, 2), r.cost, r.channel)
        )
    )


def _discrepancy(policy: Policy, ctx: DockContext) -> list[Flag]:
    shopper, scores = ctx.shopper_grade, ctx.scores
    if shopper is None:
        return []
    rule = policy.spec.discrepancy
    if shopper not in scores.grade_labels:
        return [
            Flag(
                "grade_discrepancy",
                f"The shopper-photo grade {shopper!r} is not one of "
                "the model's grades; no comparison was made.",
                "note",
                {"shopper_grade": shopper, "dock_grade": scores.grade},
            )
        ]
    # On the policy's ladder: a fitted two-grade model's ok -> damaged spans all of it.
    gap = policy.grade_rank(scores.grade, scores.grade_labels) - policy.grade_rank(
        shopper, scores.grade_labels
    )
    if gap < rule.min_grade_gap:
        return []
    return [
        Flag(
            "grade_discrepancy",
            f"Dock grade {scores.grade} is {gap} grades worse than the "
            f"shopper-photo grade {shopper}: transit damage or misrepresentation.",
            rule.action,
            {
                "shopper_grade": shopper,
                "dock_grade": scores.grade,
                "gap": gap,
                "min_grade_gap": rule.min_grade_gap,
            },
        )
    ]


def _low_confidence(policy: Policy, scores: Scores) -> list[Flag]:
    conf = policy.spec.confidence
    bar = conf.dock_min_grade_confidence
    bar = conf.min_grade_confidence if bar is None else bar
    if scores.confidence >= bar:
        return []
    return [
        Flag(
            "low_confidence",
            f"The model is not sure of the dock grade: {scores.grade} at "
            f"{scores.confidence:.2f} < {bar:.2f}.",
            "review",
            {
                "grade": scores.grade,
                "confidence": round(scores.confidence, 4),
                "min_grade_confidence": bar,
            },
        )
    ]
