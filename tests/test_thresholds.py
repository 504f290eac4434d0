"""Card-driven thresholds: the card's suggestion by default, the YAML's number when it
writes one, the fallback when neither; the source of each; the version follows them."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from returnlens.cli import main
from serving.policy import Policy, default_policy_path, load_policy, policy_from_dict
from serving.policy.thresholds import FALLBACK, resolve_thresholds
from serving.services.decide import policy_for_model
from vision.card import ModelCard
from vision.preprocess import PreprocessSpec

GRADES = ("A_new", "B_like_new", "C_good", "D_fair", "E_damaged")
DAMAGE = ("scratch", "dent", "crack", "stain", "tear", "missing_part", "packaging_damage")
CONF, SIM = "confidence.min_grade_confidence", "wrong_item.min_similarity"
SUGGESTED = {"auto_approve_confidence": 0.83, "wrong_item_similarity": 0.91, "damage_present": 0.5}


def card(thresholds: dict[str, Any] | None = None) -> ModelCard:
    """A card with the suggestions above; ``thresholds``: what export says they were
    fitted for (``card.metrics["thresholds"]``)."""
    return ModelCard(
        "m-test",
        GRADES,
        DAMAGE,
        PreprocessSpec(),
        thresholds=dict(SUGGESTED),
        metrics={"thresholds": thresholds or {}},
    )


def shipped() -> dict[str, Any]:
    """The shipped policy with both thresholds left to the card (the shipped file writes
    the similarity bar it measured; these tests exercise the card-driven case)."""
    data = yaml.safe_load(default_policy_path().read_text(encoding="utf-8"))
    data["wrong_item"]["min_similarity"] = None
    return dict(data)


def card_driven() -> Policy:
    return policy_from_dict(shipped())


def test_the_shipped_policy_takes_confidence_from_the_card_and_writes_similarity() -> None:
    policy = load_policy().for_model(SUGGESTED)
    assert policy.spec.confidence.min_grade_confidence == 0.83
    assert policy.spec.wrong_item.min_similarity == 0.7
    assert {k: e.source for k, e in policy.thresholds.items()} == {
        CONF: "model card",
        SIM: "policy",
    }


def test_a_policy_can_leave_both_thresholds_to_the_card() -> None:
    policy = card_driven().for_model(SUGGESTED)
    assert policy.spec.confidence.min_grade_confidence == 0.83
    assert policy.spec.wrong_item.min_similarity == 0.91
    assert {k: e.source for k, e in policy.thresholds.items()} == {
        CONF: "model card",
        SIM: "model card",
    }


@pytest.mark.parametrize("how", ["absent", "null"])
def test_card_suggestion_is_used_when_the_yaml_omits_it(how: str) -> None:
    data = shipped()
    if how == "absent":
        del data["confidence"]["min_grade_confidence"]
        del data["wrong_item"]
    else:
        data["confidence"]["min_grade_confidence"] = None
    policy = policy_from_dict(data).for_model(SUGGESTED)
    assert policy.spec.confidence.min_grade_confidence == 0.83
    assert policy.thresholds[CONF].source == "model card"
    assert policy.thresholds[CONF].line() == (
        "confidence.min_grade_confidence = 0.83 (model card: auto_approve_confidence)"
    )


def test_yaml_overrides_the_card() -> None:
    data = shipped()
    data["confidence"]["min_grade_confidence"] = 0.6
    policy = policy_from_dict(data).for_model(SUGGESTED)
    assert policy.spec.confidence.min_grade_confidence == 0.6
    assert policy.spec.wrong_item.min_similarity == 0.91  # still the card's
    eff = policy.thresholds[CONF]
    assert (eff.source, eff.value) == ("policy", 0.6)
    assert eff.line() == (
        "confidence.min_grade_confidence = 0.6 (policy); overrides the model card's 0.83"
    )


def test_fallback_without_a_card_value_or_with_a_broken_one() -> None:
    plain = card_driven()
    assert plain.spec.confidence.min_grade_confidence == FALLBACK[CONF] == 0.7
    assert plain.thresholds[CONF].source == "default"
    assert "no model given" in plain.thresholds[CONF].note
    older = plain.for_model({})  # a card from before suggestions existed
    assert older.thresholds[SIM].source == "default" and older.version == plain.version
    assert "which has no wrong_item_similarity" in older.thresholds[SIM].note
    broken = resolve_thresholds({CONF: None, SIM: None}, {"auto_approve_confidence": 1.7})
    assert (broken[CONF].value, broken[CONF].source) == (0.7, "default")
    assert "not a number in [0, 1]" in broken[CONF].note


def test_version_follows_the_effective_thresholds() -> None:
    """The version hashes effective values: a retrained model whose card suggests another
    bar moves it; where a value came from does not."""
    plain = card_driven()
    a = plain.for_model(SUGGESTED)
    b = plain.for_model({**SUGGESTED, "auto_approve_confidence": 0.84})
    c = plain.for_model({**SUGGESTED, "wrong_item_similarity": 0.9})
    assert len({plain.version, a.version, b.version, c.version}) == 4
    assert plain.for_model(dict(SUGGESTED)).version == a.version  # deterministic
    assert a.for_model(SUGGESTED).version == a.version  # idempotent
    assert a.for_model({}).version == plain.version  # re-resolved from what the YAML wrote
    spelled = shipped()
    spelled["confidence"]["min_grade_confidence"] = 0.83
    spelled["wrong_item"]["min_similarity"] = 0.91
    assert policy_from_dict(spelled).version == a.version  # same numbers, same decisions
    # A number written in the policy pins the version whatever the card says.
    pinned = policy_from_dict(spelled)
    assert pinned.for_model({"auto_approve_confidence": 0.5}).version == pinned.version


def test_the_service_resolves_the_policy_once_for_its_model() -> None:
    from serving.services.service import ReturnLensService

    grader = SimpleNamespace(card=card())
    svc = ReturnLensService(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        grader,  # type: ignore[arg-type]
        grader,  # type: ignore[arg-type]
        load_policy(),
        heatmaps=SimpleNamespace(),  # type: ignore[arg-type]  # no photo store to sit beside
    )
    try:
        assert svc.policy.spec.confidence.min_grade_confidence == 0.83
        assert svc.policy.version == load_policy().for_model(SUGGESTED).version
        assert svc.policy.version != load_policy().version
        assert policy_for_model(svc.policy, grader.card).version == svc.policy.version
    finally:
        svc.pool.shutdown()


def test_policy_check_shows_each_threshold_and_its_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    targets = {
        "auto_approve_confidence": {"target_precision": 0.98, "val_photos": 466},
        "wrong_item_similarity": {"target_false_flag_rate": 0.01, "val_photos": 466},
    }
    model = tmp_path / "card.json"
    model.write_text(card(thresholds=targets).to_json(), encoding="utf-8")
    data = copy.deepcopy(shipped())
    data["wrong_item"]["min_similarity"] = 0.75
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(yaml.safe_dump(data), encoding="utf-8")

    assert main(["policy", "check", str(policy_file), "--model", str(model)]) == 0
    out = capsys.readouterr().out
    expected = policy_from_dict(data).for_model(SUGGESTED).version
    assert out.startswith(f"OK {expected}\n")
    assert "  thresholds in effect with model m-test:\n" in out
    assert (
        "    confidence.min_grade_confidence = 0.83 (model card: auto_approve_confidence); "
        "fitted for 98% auto-decision precision on validation (466 photos)\n"
    ) in out
    assert (
        "    wrong_item.min_similarity = 0.75 (policy); overrides the model card's 0.91\n"
    ) in out

    assert main(["policy", "check", str(default_policy_path())]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK {load_policy().version}\n")
    assert "  thresholds in effect (no --model given):\n" in out
    assert "    confidence.min_grade_confidence = 0.7 (default); left to the model card's" in out
    assert "    wrong_item.min_similarity = 0.7 (policy)\n" in out
