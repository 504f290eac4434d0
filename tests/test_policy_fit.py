"""Any model the pipeline trains can be served (issue 16, point 6): the shipped policy
fitted to a model's own labels (serving.policy.fit), down to a two-grade model trained
on an imported ImageFolder tree with no damage labels."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from returnlens.cli import main
from serving.policy import (
    DockContext,
    Scores,
    check_compatible,
    decide_disposition,
    default_policy_path,
    load_policy,
    policy_from_dict,
)
from vision.errors import ConfigError

GRADES = ("A_new", "B_like_new", "C_good", "D_fair", "E_damaged")
DAMAGE = ("scratch", "dent", "crack", "stain", "tear", "missing_part", "packaging_damage")
TWO = ("ok", "damaged")


def shipped() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(default_policy_path().read_text(encoding="utf-8")))


def test_the_shipped_model_labels_leave_the_policy_as_written() -> None:
    policy = load_policy()
    fitted = policy.fitted_to(GRADES, DAMAGE)
    assert fitted.fit is None and fitted.version == policy.version
    assert fitted.categories == policy.categories


def test_grades_match_by_rank_and_rules_are_rewritten() -> None:
    fitted = load_policy().fitted_to(("new", "fair", "broken"), ())
    assert fitted.fit is not None
    assert fitted.fit.mapping == {"new": "A_new", "fair": "C_good", "broken": "E_damaged"}
    assert fitted.spec.condition.pristine_grades == ["new"]
    assert fitted.spec.condition.damaged_from_grade == "broken"
    default = fitted.categories["default"].dock
    assert default.grade_tiers == {"new": "new", "fair": "used_good", "broken": "salvage"}
    assert default.channels["refurbish"].grades == ["fair"]
    shoe = fitted.categories["shoe"].non_returnable[0]
    assert shoe.grades == ["broken"]  # D_fair/E_damaged: only broken stands for either


def test_grade_map_pins_the_mapping_and_changes_the_version() -> None:
    data = shipped()
    guessed = policy_from_dict(data).fitted_to(TWO, ())
    data["grade_map"] = {"ok": "B_like_new", "damaged": "D_fair"}
    pinned = policy_from_dict(data).fitted_to(TWO, ())
    assert pinned.fit is not None and [g.how for g in pinned.fit.grades] == ["grade_map"] * 2
    assert pinned.categories["default"].dock.grade_tiers == {
        "ok": "open_box",
        "damaged": "used_fair",
    }
    assert pinned.version != guessed.version
    assert not any("matched by rank" in line for line in pinned.fit.lines())


def test_refitting_starts_from_the_written_policy_and_is_cached() -> None:
    policy = load_policy()
    two = policy.fitted_to(TWO, ())
    assert two.fitted_to(TWO, ()) is two and policy.fitted_to(TWO, ()) is two
    back = two.fitted_to(GRADES, DAMAGE)
    assert back.version == policy.version and back.fit is None
    assert check_compatible(policy, TWO, ()).version == two.version


def test_dock_discrepancy_is_measured_on_the_policy_ladder() -> None:
    policy = load_policy()
    scores = Scores(TWO, {"ok": 0.05, "damaged": 0.95}, {})
    out = decide_disposition(policy, DockContext("box", 50.0, scores, shopper_grade="ok"))
    (flag,) = [f for f in out.flags if f.code == "grade_discrepancy"]
    assert flag.evidence["gap"] == 4 and flag.effect == "review"
    assert out.tier == "salvage" and out.policy_version == policy.fitted_to(TWO, ()).version


def test_a_grade_map_to_no_grade_is_an_error_with_its_path() -> None:
    data = shipped()
    data["grade_map"] = {"ok": "perfect"}
    with pytest.raises(ConfigError, match=r"grade_map\.ok: 'perfect' is not one of the policy"):
        policy_from_dict(data).fitted_to(TWO, ())


# --- end to end: ImageFolder -> manifest -> tiny training run -> export -> served -------


def _image_folder(root: Path, per_class: int = 16) -> Path:
    """ok/ and damaged/ folders of rendered item photos; damaged ones carry dark scratches."""
    from tests.photo_factory import item_scene

    rng = np.random.default_rng(0)
    for folder in TWO:
        (root / folder).mkdir(parents=True)
        for i in range(per_class):
            rgb = np.ascontiguousarray(item_scene(i, size=(160, 120)).rgb)
            if folder == "damaged":
                for _ in range(6):
                    x = int(rng.integers(30, 120))
                    cv2.line(rgb, (x, 20), (x + 10, 100), (15, 15, 15), 3)
            cv2.imwrite(str(root / folder / f"{i:02d}.png"), rgb[..., ::-1])
    return root


@pytest.fixture(scope="module")
def two_grade_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from tests.train_data import tiny_config
    from training.export import calibrate_and_export
    from training.train import train
    from vision.manifest.importers import import_folder

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("two-grade")
    tree = _image_folder(root / "tree")
    manifest = import_folder(
        tree,
        root / "manifest.jsonl",
        grade_map={"ok": "ok", "damaged": "damaged"},
        category="box",
        split_dirs=False,
        val_fraction=0.25,
        test_fraction=0.0,
    )
    assert manifest.header.grade_labels == TWO and not manifest.header.damage_labels
    config = tiny_config(root / "manifest.jsonl", root / "run", epochs=1, max_steps=2)
    result = train(config, progress=False)
    report = calibrate_and_export(
        result.best_checkpoint,
        result.manifest,
        root / "run" / "model.onnx",
        model_version="two-grade-1",
        progress=False,
    )
    return report.path


def test_policy_check_fits_a_two_grade_model(
    two_grade_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["policy", "check", str(default_policy_path()), "--model", str(two_grade_model)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ok -> A_new (rank)" in out and "damaged -> E_damaged (rank)" in out
    assert "grade_map: {ok: A_new, damaged: E_damaged}" in out
    assert re.search(r"categories\.garment\.non_returnable\[0\]: .*rule skipped", out)
    assert "categories.phone.non_returnable[0].damage: the model has no damage label 'crack'" in out


def test_the_service_serves_a_two_grade_model(
    two_grade_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from tests.shop import jpeg, load_shop, make_settings, scene
    from vision.model import OnnxModel

    settings = make_settings(f"sqlite:///{tmp_path / 'api.db'}", tmp_path, two_grade_model)
    with TestClient(create_app(settings)) as client:
        shop = load_shop(client, settings)
        return_id, token = shop.open_return()
        r = shop.upload(return_id, token, jpeg(scene(1, "box")))
        assert r.status_code in (200, 201), r.text
        body = r.json()
        assert "fitted to model two-grade-1's labels" in caplog.text  # the start-up warning
        assert "ok -> A_new (rank)" in caplog.text
        decision = body["decision"]
        assert decision["grade"]["label"] in TWO and set(decision["grade"]["probs"]) == set(TWO)
        card = OnnxModel(two_grade_model).card
        served = load_policy().fitted_to(TWO, ()).for_model(card.thresholds)
        assert decision["policy_version"] == served.version
        # the dock: the model's grade -> its policy grade's tier -> a channel
        r = client.post(
            "/v1/dock/inspections",
            files=[("photos", ("dock.jpg", jpeg(scene(12, "box")), "image/jpeg"))],
            data={"return_id": return_id, "station_id": "dock-1"},
            headers={**shop.headers("dock"), "Idempotency-Key": "station-1:0001"},
        )
        assert r.status_code == 201, r.text
        inspection = r.json()
        tiers = served.categories["box"].dock.grade_tiers
        assert inspection["grade"] in TWO and inspection["tier"] == tiers[inspection["grade"]]
        assert inspection["policy_version"] == served.version
        assert any(a["eligible"] for a in inspection["alternatives"])
        # no unfamiliarity score in a two-step run: held for a person, never guessed
        assert inspection["needs_review"] and inspection["channel"] is None


def test_a_fitted_policy_text_rebuilds_fitted_with_its_version() -> None:
    """The canonical JSON (what replay stores) records the fit, and reads back as it."""
    fitted = load_policy().fitted_to(TWO, ()).for_model({"auto_approve_confidence": 0.8})
    data = json.loads(json.dumps(fitted.resolved(), sort_keys=True))
    assert data["grade_fit"]["grades"] == [["ok", "A_new"], ["damaged", "E_damaged"]]
    categories = data.pop("categories")
    data["defaults"] = categories.pop("default")
    data["categories"] = categories
    rebuilt = policy_from_dict(data, source="stored")
    assert rebuilt.version == fitted.version and rebuilt.fit is not None
    assert rebuilt.fitted_to(TWO, ()) is rebuilt
    scores = Scores(TWO, {"ok": 0.05, "damaged": 0.95}, {})
    dock = DockContext("phone", 300.0, scores, shopper_grade="ok")
    assert decide_disposition(rebuilt, dock) == decide_disposition(fitted, dock)
    data["grade_fit"] = {"ladder": ["A_new"], "grades": [["ok", "Z"]], "damage_labels": []}
    with pytest.raises(ConfigError, match=r"grade_fit: must hold ladder"):
        policy_from_dict(data)
