"""Guided capture in the policy: the ``views`` of a category (format, merge, version,
fitting) and the ``missing_views`` flag's sentences and evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from serving.policy import (
    PhotoQuality,
    QualityIssue,
    ReturnContext,
    Scores,
    decide_return,
    default_policy_path,
    load_policy,
    policy_from_dict,
)
from vision.errors import ConfigError

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
GRADES = ("A_new", "B_like_new", "C_good", "D_fair", "E_damaged")
DAMAGE = ("scratch", "dent", "crack", "stain", "tear", "missing_part", "packaging_damage")
CLEAN = Scores(
    GRADES, {g: 0.96 if g == "A_new" else 0.01 for g in GRADES}, dict.fromkeys(DAMAGE, 0.02)
)
VIEWS = [
    {"name": "front", "prompt": "The front of the box", "outline": "box"},
    {"name": "label_side", "prompt": "The side with the label"},
]


def shipped() -> dict[str, Any]:
    data = yaml.safe_load(default_policy_path().read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def with_views(views: Any, where: str = "box") -> dict[str, Any]:
    data = shipped()
    if where == "defaults":
        data["defaults"]["views"] = views
    else:
        data["categories"][where] = {**(data["categories"].get(where) or {}), "views": views}
    return data


def ctx(*photos: PhotoQuality, retakes: int = 0, category: str = "box") -> ReturnContext:
    return ReturnContext(
        category=category,
        sku="box-01",
        price=40.0,
        reason="changed_mind",
        delivered_at=NOW - timedelta(days=3),
        now=NOW,
        photos=photos,
        scores=CLEAN if any(p.passed for p in photos) else None,
        similarity=0.95,
        has_reference=True,
        previous_retakes=retakes,
    )


def test_a_policy_without_views_hashes_as_before_and_views_move_the_version() -> None:
    base = policy_from_dict(shipped())
    for name, cat in base.resolved()["categories"].items():
        assert ("views" in cat) == (name == "phone"), name  # only the phone asks for views
    data = shipped()
    data["categories"]["box"]["views"] = None  # spelled out as "none": same version
    assert policy_from_dict(data).version == base.version
    with_box = policy_from_dict(with_views(VIEWS))
    assert with_box.version != base.version
    assert [v.name for v in with_box.categories["box"].views or ()] == ["front", "label_side"]
    assert with_box.categories["box"].views[1].outline == "generic"  # type: ignore[index]


def test_views_merge_from_defaults_and_a_category_can_drop_them() -> None:
    data = with_views(VIEWS, where="defaults")
    data["categories"]["mug"] = {**data["categories"]["mug"], "views": []}
    policy = policy_from_dict(data)
    assert [v.name for v in policy.categories["book"].views or ()] == ["front", "label_side"]
    assert policy.categories["mug"].views == []
    assert [v.name for v in policy.categories["phone"].views or ()] == [
        "front_screen_on",
        "back",
        "box",
    ]  # the category's own list replaces the default one


@pytest.mark.parametrize(
    ("views", "path"),
    [
        ([{"name": "Front!", "prompt": "x"}], "categories.box.views[0].name"),
        ([{"name": "front", "prompt": ""}], "categories.box.views[0].prompt"),
        (
            [{"name": "front", "prompt": "x", "outline": "teapot"}],
            "categories.box.views[0].outline",
        ),
        ([{"name": "front", "prompt": "x", "colour": "red"}], "categories.box.views[0].colour"),
        ([{"name": "a", "prompt": "x"}, {"name": "a", "prompt": "y"}], "categories.box.views"),
        ([{"name": f"v{i}", "prompt": "x"} for i in range(7)], "categories.box.views"),
    ],
)
def test_bad_views_name_their_yaml_path(views: Any, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        policy_from_dict(with_views(views))
    paths = [e["path"] for e in info.value.details["errors"]]
    assert path in paths, paths


def test_fitting_to_other_labels_keeps_the_views() -> None:
    policy = policy_from_dict(with_views(VIEWS))
    fitted = policy.fitted_to(("ok", "worn", "broken"), ("crack",))
    assert fitted.fit is not None and fitted.version != policy.version
    assert fitted.categories["box"].views == policy.categories["box"].views
    assert fitted.categories["phone"].views == policy.categories["phone"].views


def test_missing_view_asks_for_it_by_its_prompt_then_goes_to_review() -> None:
    policy = policy_from_dict(with_views(VIEWS))
    front = PhotoQuality(True, photo_id="p1", view="front")
    blurry_label = PhotoQuality(
        False, (QualityIssue("blur", "The photo is blurry."),), photo_id="p2", view="label_side"
    )
    first = decide_return(policy, ctx(front, blurry_label))
    assert first.outcome == "retake"
    flag = next(f for f in first.flags if f.code == "missing_views")
    assert flag.effect == "retake"
    assert flag.evidence["missing"] == ["label_side"]  # a blurry photo does not cover it
    assert flag.evidence["covered"] == ["front"]
    assert "The side with the label" in flag.message
    assert first.shopper_message == (
        "Please add a photo of each view we still need: the side with the label."
    )
    none = decide_return(policy, ctx(PhotoQuality(True, photo_id="p1")))
    missing = next(f for f in none.flags if f.code == "missing_views")
    assert missing.evidence["missing"] == ["front", "label_side"]
    limit = policy.spec.quality.max_retakes
    late = decide_return(policy, ctx(front, retakes=limit))
    assert late.outcome == "needs_review"
    assert [(f.code, f.effect) for f in late.flags] == [("missing_views", "review")]
    below = decide_return(policy, ctx(front, retakes=limit - 1))
    assert below.outcome == "retake"


def test_covered_views_leave_the_decision_to_the_other_rules() -> None:
    policy = policy_from_dict(with_views(VIEWS))
    both = ctx(PhotoQuality(True, view="label_side"), PhotoQuality(True, view="front"))
    without = policy_from_dict(shipped())
    assert decide_return(policy, both).flag_codes == decide_return(without, both).flag_codes
    assert "missing_views" not in decide_return(policy, both).flag_codes
    # A category without views ignores the views photos name.
    mug = ctx(PhotoQuality(True, view="front"), category="mug")
    assert "missing_views" not in decide_return(policy, mug).flag_codes


def test_the_shipped_phone_asks_for_three_views() -> None:
    phone = load_policy().categories["phone"]
    assert [(v.name, v.outline) for v in phone.views or ()] == [
        ("front_screen_on", "phone_front"),
        ("back", "phone_back"),
        ("box", "box"),
    ]
    assert all(v.prompt[0].isupper() for v in phone.views or ())
