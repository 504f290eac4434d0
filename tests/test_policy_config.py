"""The policy YAML: schema errors with paths, merging, the content-hash version, the CLI."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from returnlens.cli import main
from serving.policy import (
    DEFAULT_CATEGORY,
    check_compatible,
    default_policy_path,
    load_policy,
    parse_policy,
    policy_from_dict,
)
from vision.errors import ConfigError

GRADES = ("A_new", "B_like_new", "C_good", "D_fair", "E_damaged")
DAMAGE = ("scratch", "dent", "crack", "stain", "tear", "missing_part", "packaging_damage")


def shipped() -> dict[str, Any]:
    return yaml.safe_load(default_policy_path().read_text(encoding="utf-8"))


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        policy_from_dict(data)
    assert info.value.code == "invalid_config"
    return [f"{e['path']}: {e['message']}" for e in info.value.details["errors"]]


def test_shipped_policy_loads_and_fits_the_default_labels() -> None:
    policy = load_policy()
    assert re.fullmatch(r"pol-[0-9a-f]{12}", policy.version)
    assert {"box", "phone", "mug", "shoe", "garment", "book", DEFAULT_CATEGORY} <= set(
        policy.categories
    )
    check_compatible(policy, GRADES, DAMAGE)  # raises on any mismatch
    assert load_policy(default_policy_path()).version == policy.version


def test_categories_deep_merge_over_defaults() -> None:
    policy = load_policy()
    phone, mug = policy.categories["phone"], policy.categories["mug"]
    assert phone.return_window_days == 14 and mug.return_window_days == 30
    # phone overrides only the refurbish cost: the markdown and grades come from defaults
    defaults = policy.categories[DEFAULT_CATEGORY].dock.channels["refurbish"]
    assert phone.dock.channels["refurbish"].cost == 40.0
    assert phone.dock.channels["refurbish"].markdown == defaults.markdown
    assert phone.dock.channels["refurbish"].grades == defaults.grades
    assert mug.dock.channels["refurbish"].grades == []  # disabled for mugs
    # lists replace: the garment rule is the only rule of the garment category
    assert [r.damage for r in policy.categories["garment"].non_returnable] == [["stain", "tear"]]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("mug", "mug"), ("MUG ", "mug"), ("spaceship", DEFAULT_CATEGORY), ("", DEFAULT_CATEGORY)],
)
def test_unknown_categories_use_default(name: str, expected: str) -> None:
    assert load_policy().category(name)[0] == expected


def test_missing_default_category_equals_defaults() -> None:
    data = shipped()
    del data["categories"]["default"]
    policy = policy_from_dict(data)
    assert policy.categories[DEFAULT_CATEGORY] == policy_from_dict(shipped()).categories["default"]


# --- the version -----------------------------------------------------------------------


def test_version_ignores_formatting_comments_order_and_spelled_out_defaults() -> None:
    text = default_policy_path().read_text(encoding="utf-8")
    base = parse_policy(text).version
    data = shipped()
    flow = yaml.safe_dump(data, default_flow_style=True, sort_keys=True)
    reordered = yaml.safe_dump(dict(reversed(list(data.items()))), sort_keys=False)
    assert parse_policy("# a new comment\n" + flow).version == base
    assert parse_policy(reordered).version == base
    assert parse_policy(json.dumps(data, indent=3)).version == base  # JSON is YAML too
    spelled = copy.deepcopy(data)
    spelled["quality"] = {"min_usable_photos": 1, "max_retakes": 3}  # the same values
    spelled["categories"]["mug"]["return_window_days"] = 30  # equal to the inherited value
    spelled["categories"]["book"]["dock"]["channels"]["refurbish"]["cost"] = 15.0
    spelled["wrong_item"]["min_similarity"] = 0.70  # the same number, spelled differently
    assert policy_from_dict(spelled).version == base


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["categories"]["mug"].update(return_window_days=31),
        lambda d: d.update(name="Another name"),
        lambda d: d["confidence"].update(min_grade_confidence=0.56),
        lambda d: d["defaults"]["dock"]["channels"]["restock"].update(cost=2.5),
        lambda d: (
            d["reasons"].pop("not_as_described")
            and d["reasons"].update(not_as_described={"expects": "intact"})
        ),
    ],
)
def test_version_changes_with_content(change: Any) -> None:
    data = shipped()
    change(data)
    assert policy_from_dict(data).version != policy_from_dict(shipped()).version


# --- validation errors -----------------------------------------------------------------


def _set(path: str, value: Any) -> Any:
    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return apply


_DELETE = object()

INVALID = [
    (
        _set("categories.mug.return_window_days", 0),
        "categories.mug.return_window_days: must be > 0, got 0",
    ),
    (_set("defaults.return_window_days", -1), "defaults.return_window_days: must be > 0, got -1"),
    (
        _set("defaults.return_window_days", "30"),
        "defaults.return_window_days: must be a whole number, got text '30'",
    ),
    (
        _set("defaults.return_window_days", _DELETE),
        "defaults.return_window_days: required key is missing",
    ),
    (
        _set("defaults.retrun_window_days", 30),
        "defaults.retrun_window_days: unknown key 'retrun_window_days' "
        "(did you mean 'return_window_days'?)",
    ),
    (
        _set("categories.phone.colour", "red"),
        "categories.phone.colour: unknown key 'colour' (allowed: return_window_days, returnable, "
        "non_returnable_reasons, high_value, non_returnable, dock, resolution, views)",
    ),
    (
        _set("policy_format", 2),
        "policy_format: unsupported policy_format 2; this ReturnLens reads format 1",
    ),
    (_set("name", ""), "name: must not be empty"),
    (
        _set("confidence.min_grade_confidence", 1.5),
        "confidence.min_grade_confidence: must be <= 1, got 1.5",
    ),
    (
        _set("confidence.damage_uncertain", {"low": 0.7, "high": 0.3}),
        "confidence.damage_uncertain: low (0.7) must be below high (0.3)",
    ),
    (
        _set("reasons.chnaged_mind", {"expects": "intact"}),
        "reasons.chnaged_mind: must be one of 'changed_mind', 'defective', 'damaged_in_transit', "
        "'wrong_item', 'not_as_described' or 'does_not_fit' (unknown key 'chnaged_mind')",
    ),
    (
        _set("reasons.defective", {"expects": "broken"}),
        "reasons.defective.expects: must be one of 'intact', 'damaged', 'different_item' or 'any' "
        "(got 'broken')",
    ),
    (_set("wrong_item.min_similarity", 1.2), "wrong_item.min_similarity: must be <= 1, got 1.2"),
    (_set("reused_photo.max_hamming", 65), "reused_photo.max_hamming: must be <= 64, got 65"),
    (_set("repeat_returner.min_returns", 0), "repeat_returner.min_returns: must be >= 1, got 0"),
    (_set("discrepancy.min_grade_gap", 0), "discrepancy.min_grade_gap: must be >= 1, got 0"),
    (
        _set("quality.max_retakes", True),
        "quality.max_retakes: must be a whole number, got a boolean True",
    ),
    (_set("defaults.high_value", -5.0), "defaults.high_value: must be > 0, got -5.0"),
    (
        _set("defaults.non_returnable_reasons", ["bored"]),
        "defaults.non_returnable_reasons[0]: must be one of 'changed_mind', 'defective', "
        "'damaged_in_transit', 'wrong_item', 'not_as_described' or 'does_not_fit' (got 'bored')",
    ),
    (
        _set("categories.shoe.non_returnable", [{"reasons": ["changed_mind"]}]),
        "categories.shoe.non_returnable[0]: a condition needs 'grades' or 'damage' (or both)",
    ),
    (
        _set("categories.phone.non_returnable.0.action", "refund"),
        "categories.phone.non_returnable[0].action: must be one of 'reject' or 'review' "
        "(got 'refund')",
    ),
    (
        _set("defaults.dock.channels.restock.cost", -1),
        "defaults.dock.channels.restock.cost: must be >= 0, got -1",
    ),
    (
        _set("categories.phone.dock.channels.refurbish.markdown", 1.5),
        "categories.phone.dock.channels.refurbish.markdown: "
        "must be a fraction between 0 and 1, or 'tier'",
    ),
    (
        _set("categories.phone.dock.channels.drone", {"markdown": 0.1}),
        "categories.phone.dock.channels.drone.cost: required key is missing",
    ),
    (
        _set("defaults.dock.grade_tiers.C_good", "mint"),
        "defaults.dock: grade_tiers names unknown tiers (C_good -> mint); "
        "tiers are: new, open_box, used_good, used_fair, salvage",
    ),
    (_set("defaults.dock.channels", {}), "defaults.dock.channels: must not be empty"),
    (
        _set("categories.Mug", {}),
        "categories.Mug: category name 'Mug' must use lowercase letters, digits, '_' or '-'",
    ),
    (_set("categories.mug", [1, 2]), "categories.mug: must be a mapping, got a list [1, 2]"),
    (_set("condition.pristine_grades", []), "condition.pristine_grades: must not be empty"),
]


@pytest.mark.parametrize(("mutate", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_policy_names_the_yaml_path(mutate: Any, message: str) -> None:
    data = shipped()
    mutate(data)
    assert message in errors_of(data)


def test_every_error_is_reported_once() -> None:
    data = shipped()
    data["defaults"]["return_window_days"] = 0  # inherited by all categories but one
    data["categories"]["phone"]["return_window_days"] = -2
    data["confidence"]["min_grade_confidence"] = 2
    errors = errors_of(data)
    assert errors == [
        "confidence.min_grade_confidence: must be <= 1, got 2",
        "defaults.return_window_days: must be > 0, got 0",
        "categories.phone.return_window_days: must be > 0, got -2",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("policy_format: 1\nname: [broken\n", "is not valid YAML at line 3, column 1"),
        ("a: 1\nb:\n  c: 1\n  c: 2\n", "is not valid YAML at line 4, column 3: duplicate key 'c'"),
        ("", "is empty"),
        ("# only a comment\n", "is empty"),
        ("- 1\n- 2\n", "must be a YAML mapping with policy_format, name, ...; it holds list"),
    ],
)
def test_unreadable_yaml(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy(text, source="p.yaml")
    assert f"policy file p.yaml {message}" in info.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"policy file .*nope\.yaml does not exist"):
        load_policy(tmp_path / "nope.yaml")


# --- compatibility with the model's labels -----------------------------------------------


def test_check_compatible_fits_other_labels_and_lists_what_it_skips() -> None:
    policy = load_policy()
    grades = ("A_new", "B_like_new", "C_good", "D_fair", "E_damaged", "F_scrap")
    damage = tuple(d for d in DAMAGE if d != "crack")
    fitted = check_compatible(policy, grades, damage)
    assert fitted.fit is not None and fitted.fit.mapping["F_scrap"] == "E_damaged"
    assert fitted.categories["phone"].dock.grade_tiers["F_scrap"] == "salvage"
    assert [str(s) for s in fitted.fit.skipped] == [
        "categories.phone.non_returnable[0].damage: the model has no damage label 'crack': "
        "that part of the rule is skipped"
    ]
    phone_rule = fitted.categories["phone"].non_returnable[0]
    assert phone_rule.grades == ["D_fair", "E_damaged", "F_scrap"] and phone_rule.damage == []
    assert fitted.version != policy.version


def test_check_compatible_lists_every_problem() -> None:
    data = shipped()
    data["grade_map"] = {"new": "Z_mint", "used": "A_new"}
    data["defaults"]["dock"]["channels"]["liquidation"]["grades"] = [
        "B_like_new",
        "C_good",
        "D_fair",
    ]
    data["defaults"]["dock"]["channels"]["recycle"]["grades"] = ["D_fair"]
    with pytest.raises(ConfigError) as info:
        check_compatible(policy_from_dict(data), ("new", "used"), DAMAGE)
    assert info.value.code == "policy_model_mismatch"
    errors = {f"{e['path']}: {e['message']}" for e in info.value.details["errors"]}
    assert errors == {
        "grade_map.new: 'Z_mint' is not one of the policy's grades "
        "(A_new, B_like_new, C_good, D_fair, E_damaged)"
    }
    data["grade_map"] = {"new": "A_new", "used": "E_damaged"}
    with pytest.raises(ConfigError) as info:
        check_compatible(policy_from_dict(data), ("new", "used"), DAMAGE)
    errors = {f"{e['path']}: {e['message']}" for e in info.value.details["errors"]}
    assert (
        "defaults.dock.channels: no channel accepts the model's grade 'used' (as 'E_damaged')"
        in errors
    )
    data["grade_map"] = {"new": "E_damaged", "used": "A_new"}
    with pytest.raises(ConfigError, match=r"grade_map: the model lists 'used' after 'new'"):
        check_compatible(policy_from_dict(data), ("new", "used"), DAMAGE)


# --- the CLI -----------------------------------------------------------------------------


def test_cli_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(default_policy_path())]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK {load_policy().version}\n")
    assert "phone: returnable, window 14 d" in out


def test_cli_check_reports_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = shipped()
    data["categories"]["mug"]["return_window_days"] = 0
    data["wrong_item"]["min_similarity"] = "high"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["policy", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"FAILED {bad}: 2 error(s)" in err
    assert "  categories.mug.return_window_days: must be > 0, got 0" in err
    assert "  wrong_item.min_similarity: must be a number, got text 'high'" in err


@pytest.mark.parametrize("content", [None, "name: [\n"])
def test_cli_check_missing_or_broken_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    path = tmp_path / "p.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["policy", "check", str(path)]) == 2
    assert "[invalid_config]" in capsys.readouterr().err


def _card(grades: tuple[str, ...], damage: tuple[str, ...]) -> str:
    from vision.card import ModelCard
    from vision.preprocess import PreprocessSpec

    return ModelCard("m-test", grades, damage, PreprocessSpec()).to_json()


def test_cli_check_against_a_model_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = str(default_policy_path())
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(_card(GRADES, DAMAGE), encoding="utf-8")
    bad.write_text(_card(("new", "used"), DAMAGE), encoding="utf-8")
    assert main(["policy", "check", policy, "--model", str(good)]) == 0
    assert "fits the labels of" in capsys.readouterr().out
    assert main(["policy", "check", policy, "--model", str(bad)]) == 0
    out = capsys.readouterr().out
    assert "new -> A_new (rank)" in out and "used -> E_damaged (rank)" in out
    assert "grade_map: {new: A_new, used: E_damaged}" in out


def test_cli_check_reads_the_card_from_an_onnx_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx
    from onnx import TensorProto, helper

    from vision.card import CARD_KEY

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph)
    helper.set_model_props(model, {CARD_KEY: _card(GRADES, DAMAGE[:3])})
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert main(["policy", "check", str(default_policy_path()), "--model", str(path)]) == 0
    out = capsys.readouterr().out
    assert "categories.garment.non_returnable[0]: nothing the model scores is left" in out
    assert "the model has no damage labels 'stain', 'tear'" in out
