"""Dock disposition: tier, channel economics checked against hand-computed values, ties,
discrepancy and review flags."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from serving.policy import (
    DockContext,
    Scores,
    decide_disposition,
    load_policy,
    parse_policy,
    policy_from_dict,
)

GRADES = ("A_new", "B_like_new", "C_good", "D_fair", "E_damaged")
DAMAGE = ("scratch", "dent")

POLICY_YAML = """
policy_format: 1
name: dock test policy
confidence: {min_grade_confidence: 0.6, damage_uncertain: {low: 0.4, high: 0.6}}
condition: {damaged_from_grade: D_fair, pristine_grades: [A_new]}
wrong_item: {min_similarity: 0.5}
reused_photo: {max_hamming: 6}
repeat_returner: {window_days: 90, min_returns: 4}
discrepancy: {min_grade_gap: 2}
defaults:
  return_window_days: 30
  dock:
    tiers: {new: 0.0, open_box: 0.2, used: 0.5, salvage: 0.9}
    grade_tiers: {A_new: new, B_like_new: open_box, C_good: used, D_fair: used,
                  E_damaged: salvage}
    channels:
      restock: {grades: [A_new], markdown: tier, cost: 2.0}
      open_box: {grades: [A_new, B_like_new], markdown: tier, cost: 5.0}
      refurbish: {grades: [C_good, D_fair], markdown: 0.3, cost: 40.0}
      liquidation: {markdown: 0.8, cost: 1.0}
      recycle: {grades: [E_damaged], markdown: 1.0, cost: 0.5}
categories:
  shoe:
    dock: {channels: {refurbish: {cost: 10.0}}}
"""
POLICY = parse_policy(POLICY_YAML, source="test")


def probs(**p: float) -> Scores:
    return Scores(GRADES, {g: p.get(g, 0.0) for g in GRADES}, dict.fromkeys(DAMAGE, 0.0))


def dock(category: str = "mug", price: float = 100.0, **kw: Any) -> Any:
    scores = kw.pop("scores", probs(A_new=1.0))
    return decide_disposition(POLICY, DockContext(category, price, scores, **kw))


# (id, category, price, scores, channel, tier, markdown, recovery) -- recovery by hand:
# price * (1 - markdown) - cost, markdown = sum P(g) * tier(g) for "tier" channels.
ECONOMICS = [
    ("new_item_restocks", "mug", 100.0, probs(A_new=1.0), "restock", "new", 0.0, 98.0),
    # 0.6 new + 0.4 open_box: markdown 0.4 * 0.2 = 0.08 -> 100 * 0.92 - 2 = 90
    (
        "expected_markdown",
        "mug",
        100.0,
        probs(A_new=0.6, B_like_new=0.4),
        "restock",
        "new",
        0.0,
        90.0,
    ),
    # B: open_box 100 * (1 - 0.2) - 5 = 75 beats liquidation 100 * 0.2 - 1 = 19
    (
        "like_new_open_box",
        "mug",
        100.0,
        probs(B_like_new=0.9, A_new=0.1),
        "open_box",
        "open_box",
        0.2,
        100 * (1 - 0.18) - 5,
    ),
    # C: refurbish 100 * 0.7 - 40 = 30 beats liquidation 19
    (
        "refurbish_pays_on_price",
        "mug",
        100.0,
        probs(C_good=0.7, D_fair=0.3),
        "refurbish",
        "used",
        0.5,
        30.0,
    ),
    # same grade, cheap item: refurbish 20 * 0.7 - 40 = -26 < liquidation 20 * 0.2 - 1 = 3
    (
        "cheap_item_liquidates",
        "mug",
        20.0,
        probs(C_good=0.7, D_fair=0.3),
        "liquidation",
        "used",
        0.5,
        3.0,
    ),
    # a cheaper refurbish (shoe: cost 10): 20 * 0.7 - 10 = 4 > 3
    (
        "cost_changes_choice",
        "shoe",
        20.0,
        probs(C_good=0.7, D_fair=0.3),
        "refurbish",
        "used",
        0.5,
        4.0,
    ),
    # E: liquidation 100 * 0.2 - 1 = 19 beats recycle -0.5
    ("damaged_liquidates", "mug", 100.0, probs(E_damaged=1.0), "liquidation", "salvage", 0.9, 19.0),
    # E at price 2: liquidation 2 * 0.2 - 1 = -0.6 < recycle -0.5
    ("worthless_recycles", "mug", 2.0, probs(E_damaged=1.0), "recycle", "salvage", 0.9, -0.5),
]


@pytest.mark.parametrize(
    ("category", "price", "scores", "channel", "tier", "markdown", "recovery"),
    [c[1:] for c in ECONOMICS],
    ids=[c[0] for c in ECONOMICS],
)
def test_channel_economics(
    category: str,
    price: float,
    scores: Scores,
    channel: str,
    tier: str,
    markdown: float,
    recovery: float,
) -> None:
    result = dock(category, price, scores=scores)
    assert (result.channel, result.tier) == (channel, tier)
    assert result.markdown == pytest.approx(markdown)
    assert result.expected_recovery == pytest.approx(recovery)
    assert result.alternatives[0].channel == channel


def test_recovery_table_lists_every_channel_eligible_first() -> None:
    result = dock(price=100.0, scores=probs(C_good=0.7, D_fair=0.3))
    table = {row.channel: row for row in result.alternatives}
    assert [r.channel for r in result.alternatives] == [
        "refurbish",
        "liquidation",
        "restock",
        "open_box",
        "recycle",
    ]
    assert [r.eligible for r in result.alternatives] == [True, True, False, False, False]
    assert table["restock"].markdown == pytest.approx(0.5)  # 0.7 * 0.5 + 0.3 * 0.5
    assert table["restock"].expected_recovery == pytest.approx(48.0)  # ineligible, still priced
    assert table["recycle"].expected_recovery == pytest.approx(-0.5)


def _tie_policy(channels: dict[str, Any]) -> Any:
    data = yaml.safe_load(POLICY_YAML)
    data["defaults"]["dock"]["channels"] = channels
    del data["categories"]  # shoe overrides a channel these tables do not have
    return policy_from_dict(data)


@pytest.mark.parametrize(
    ("channels", "winner"),
    [
        # 100 * 0.5 - 0 == 100 * 0.6 - 10 == 50: the lower cost wins
        (
            {"b_cheap": {"markdown": 0.5, "cost": 0.0}, "a_dear": {"markdown": 0.4, "cost": 10.0}},
            "b_cheap",
        ),
        # identical rows: the alphabetically first name wins, whatever the YAML order
        (
            {"zeta": {"markdown": 0.5, "cost": 1.0}, "alpha": {"markdown": 0.5, "cost": 1.0}},
            "alpha",
        ),
        (
            {"alpha": {"markdown": 0.5, "cost": 1.0}, "zeta": {"markdown": 0.5, "cost": 1.0}},
            "alpha",
        ),
        # within a cent counts as a tie: 49.999 vs 50.0 -> lower cost
        ({"x": {"markdown": 0.50001, "cost": 0.0}, "y": {"markdown": 0.4, "cost": 10.0}}, "x"),
    ],
)
def test_ties_break_deterministically(channels: dict[str, Any], winner: str) -> None:
    result = decide_disposition(_tie_policy(channels), DockContext("mug", 100.0, probs(A_new=1.0)))
    assert result.channel == winner


@pytest.mark.parametrize(
    ("shopper", "dock_grade", "codes", "effects", "review"),
    [
        ("A_new", "C_good", ("grade_discrepancy",), ("review",), True),
        ("A_new", "E_damaged", ("grade_discrepancy",), ("review",), True),
        ("A_new", "B_like_new", (), (), False),  # gap 1 < 2
        ("D_fair", "A_new", (), (), False),  # better at the dock: no concern
        (None, "E_damaged", (), (), False),
        ("Z_unknown", "C_good", ("grade_discrepancy",), ("note",), False),
    ],
)
def test_grade_discrepancy(
    shopper: str | None,
    dock_grade: str,
    codes: tuple[str, ...],
    effects: tuple[str, ...],
    review: bool,
) -> None:
    result = dock(scores=probs(**{dock_grade: 1.0}), shopper_grade=shopper)
    assert result.flag_codes == codes
    assert tuple(f.effect for f in result.flags) == effects
    assert result.needs_review is review
    if effects == ("review",):
        gap = GRADES.index(dock_grade) - GRADES.index(shopper or "")
        assert result.flags[0].evidence == {
            "shopper_grade": shopper,
            "dock_grade": dock_grade,
            "gap": gap,
            "min_grade_gap": 2,
        }


def test_low_confidence_and_bad_photos_route_to_review() -> None:
    unsure = dock(scores=probs(A_new=0.55, B_like_new=0.45))
    assert unsure.flag_codes == ("low_confidence",) and unsure.needs_review
    assert unsure.flags[0].evidence["min_grade_confidence"] == 0.6
    assert unsure.channel == "restock"  # a disposition is still proposed
    bad = dock(quality_passed=False)
    assert bad.flag_codes == ("photo_quality",) and bad.needs_review
    assert dock().needs_review is False and dock().flags == ()


def test_dock_bar_can_differ_from_the_shopper_bar() -> None:
    data = yaml.safe_load(POLICY_YAML)
    data["confidence"]["dock_min_grade_confidence"] = 0.5
    policy = policy_from_dict(data)
    result = decide_disposition(policy, DockContext("mug", 10.0, probs(A_new=0.55, C_good=0.45)))
    assert result.flags == ()


def test_unknown_category_uses_default() -> None:
    assert dock("spaceship").category_policy == "default"
    assert dock("shoe").category_policy == "shoe"


@pytest.mark.parametrize(
    ("category", "price", "grade", "channel", "recovery"),
    [
        ("phone", 600.0, "E_damaged", "return_to_vendor", 600 * 0.5 - 10),
        ("phone", 600.0, "D_fair", "refurbish", 600 * 0.7 - 40),
        ("mug", 18.0, "E_damaged", "liquidation", 18 * 0.15 - 1),
        ("mug", 18.0, "C_good", "resale_used", 18 * 0.65 - 4),
        ("book", 12.0, "A_new", "restock", 12 - 2),
        ("garment", 60.0, "D_fair", "refurbish", 60 * 0.7 - 8),
    ],
)
def test_shipped_policy_dispositions(
    category: str, price: float, grade: str, channel: str, recovery: float
) -> None:
    labels = ("scratch", "dent", "crack", "stain", "tear", "missing_part", "packaging_damage")
    scores = Scores(GRADES, {g: float(g == grade) for g in GRADES}, dict.fromkeys(labels, 0.0))
    result = decide_disposition(load_policy(), DockContext(category, price, scores))
    assert result.channel == channel
    assert result.expected_recovery == pytest.approx(recovery)


def test_to_dict_is_json_ready() -> None:
    import json

    data = dock(scores=probs(C_good=1.0), shopper_grade="A_new").to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["channel"] == "refurbish" and data["needs_review"] is True


# --- before anything is routed: is the grade trustworthy, is it the ordered item? ----------


def _familiar(familiar: bool | None, **p: float) -> Scores:
    base = probs(**p)
    scored = () if familiar is None else (0.2,) if familiar else (0.2, 3.0)
    return Scores(GRADES, base.grade_probs, base.damage_probs, familiar, scored)


@pytest.mark.parametrize(
    ("kw", "codes", "effects", "held"),
    [
        ({}, (), (), False),
        ({"sku": "mug-1", "similarity": 0.9, "has_reference": True}, (), (), False),
        ({"sku": "mug-1", "similarity": 0.5, "has_reference": True}, (), (), False),  # at the bar
        (
            {"sku": "mug-1", "similarity": 0.2, "has_reference": True},
            ("wrong_item",),
            ("review",),
            True,
        ),
        ({"sku": "mug-1", "has_reference": False}, ("no_reference_photo",), ("review",), True),
        ({"scores": _familiar(True, A_new=1.0)}, (), (), False),
        ({"scores": _familiar(False, A_new=1.0)}, ("unfamiliar_photo",), ("review",), True),
        ({"scores": _familiar(None, A_new=1.0)}, ("model_cannot_tell",), ("review",), True),
        (  # abstaining: the grade's discrepancy and confidence are not read
            {"scores": _familiar(False, E_damaged=0.5, A_new=0.5), "shopper_grade": "A_new"},
            ("unfamiliar_photo",),
            ("review",),
            True,
        ),
        (  # a low-confidence grade is reviewed but still routed
            {"scores": probs(A_new=0.55, B_like_new=0.45)},
            ("low_confidence",),
            ("review",),
            False,
        ),
    ],
)
def test_trust_checks_hold_the_item_instead_of_routing(
    kw: dict[str, Any], codes: tuple[str, ...], effects: tuple[str, ...], held: bool
) -> None:
    result = dock(**kw)
    assert result.flag_codes == codes
    assert tuple(f.effect for f in result.flags) == effects
    assert result.held is held and result.to_dict()["held"] is held
    assert result.needs_review is ("review" in effects)
    assert result.channel  # the economics are still shown to the person who decides


def test_wrong_item_and_no_reference_evidence_at_the_dock() -> None:
    wrong = dock(sku="mug-1", similarity=0.23456, has_reference=True).flags[0]
    assert wrong.evidence == {"sku": "mug-1", "similarity": 0.2346, "min_similarity": 0.5}
    missing = dock(sku="mug-1", has_reference=False).flags[0]
    assert missing.evidence == {"sku": "mug-1"} and "reference photo" in missing.message


def test_no_reference_as_a_note_routes_the_item() -> None:
    data = yaml.safe_load(POLICY_YAML)
    data["wrong_item"]["no_reference"] = "note"
    policy = policy_from_dict(data)
    result = decide_disposition(
        policy, DockContext("mug", 100.0, probs(A_new=1.0), sku="mug-1", has_reference=False)
    )
    assert [(f.code, f.effect) for f in result.flags] == [("no_reference_photo", "note")]
    assert not result.held and not result.needs_review


def test_similarity_without_a_reference_is_refused() -> None:
    from serving.policy import PolicyInputError

    with pytest.raises(PolicyInputError, match="no reference photo"):
        DockContext("mug", 1.0, probs(A_new=1.0), similarity=0.9, has_reference=False)
