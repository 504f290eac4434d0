"""Shadow mode (``serving.services.shadow``, ``returnlens shadow report``,
``GET /v1/admin/shadow``), on SQLite and PostgreSQL with two real tiny ONNX models.

The champion is the stock tiny model; the challenger is the same graph with its grade
centres reversed, so it grades a neutral photo ``E_damaged`` and a red one ``A_new``
(``benchmarks/tiny_model.py``): the two disagree where the test expects them to. The
shadow runner is drained deterministically (``ShadowRunner.drain``); the test that shows
a request does not wait for the challenger holds the challenger on an ``Event``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from onnx import numpy_helper
from sqlalchemy import select

from benchmarks.tiny_model import build_test_model
from returnlens.cli import main
from serving.app import create_app
from serving.policy import Policy
from serving.services import review, shadow, shopper
from serving.services.inputs import CreateReturnRequest, ReviewRequest
from serving.services.service import ReturnLensService
from serving.storage.tables import Decision, ShadowPrediction
from tests.service_data import blurry, clean, damaged
from tests.shop import ADMIN_KEY, jpeg, load_shop, make_settings, red, scene
from vision.errors import ConfigError
from vision.model import OnnxModel
from vision.pipeline import Grader
from vision.registry import card_of, write_card

REVERSED = [1.0, 0.75, 0.5, 0.25, 0.0]  # E_damaged at redness 0, A_new at redness 1


def _challenger(root: Path, version: str = "challenger-1") -> Path:
    path = build_test_model(root / f"{version}.onnx", version=version)
    model = onnx.load(str(path))
    for i, init in enumerate(model.graph.initializer):
        if init.name == "centers":
            arr = np.array([REVERSED], dtype=np.float32)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(arr, "centers"))
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def challenger_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _challenger(tmp_path_factory.mktemp("challenger"))


def _runner(svc: ReturnLensService, path: Path, **kw: object) -> shadow.ShadowRunner:
    runner = shadow.ShadowRunner(svc, Grader(OnnxModel(path)), **kw)  # type: ignore[arg-type]
    svc.shadow = runner
    return runner


def _return(svc: ReturnLensService, order: str, sku: str) -> str:
    req = CreateReturnRequest(order_id=order, sku=sku, reason="changed_mind")
    return shopper.create_return(svc, req).return_id


def _history(svc: ReturnLensService) -> tuple[list[str], dict[str, str]]:
    """Five decisions (as in tests/test_replay.py): decision ids, return of each."""
    r1 = _return(svc, "o-1", "mug-01")
    r2 = _return(svc, "o-1", "box-02")
    r3 = _return(svc, "o-2", "mug-01")
    uploads = [
        (r1, blurry(seed=1)),
        (r1, clean(seed=1)),
        (r2, clean(seed=2, corner="br")),
        (r3, damaged(seed=3)),
        (r3, clean(seed=4)),
    ]
    ids, returns = [], {}
    for rid, photo in uploads:
        did = shopper.upload_photos(svc, rid, [photo]).decision.decision_id
        ids.append(did)
        returns[did] = rid
    return ids, returns


def _pairs(svc: ReturnLensService) -> list[tuple[ShadowPrediction, Decision]]:
    with svc.db.read() as s:
        rows = s.execute(
            select(ShadowPrediction, Decision).join(
                Decision, Decision.id == ShadowPrediction.decision_id
            )
        )
        return [(sh, dec) for sh, dec in rows]


def test_decisions_are_unchanged_rows_appear_and_the_report_matches_the_rows(
    svc: ReturnLensService, challenger_path: Path
) -> None:
    runner = _runner(svc, challenger_path)
    ids, returns = _history(svc)
    assert runner.drain(timeout=60)
    with svc.db.read() as s:
        outcomes = [s.get(Decision, i).outcome for i in ids]  # type: ignore[union-attr]
    # The champion decides exactly as without a shadow (tests/test_replay.py's history).
    assert outcomes == ["retake", "approved", "approved", "needs_review", "needs_review"]
    assert runner.counts["stored"] == 5 and runner.counts["skipped"] == 0

    pairs = _pairs(svc)
    assert sorted(sh.decision_id for sh, _ in pairs) == sorted(ids)
    by_decision = {sh.decision_id: sh for sh, _ in pairs}
    for sh, dec in pairs:
        assert sh.model_version == "challenger-1"
        assert sh.return_id == dec.return_id
        assert sh.photo_ids == dec.photo_ids
        assert sh.policy_version == runner.policy.version
    # The challenger reads a neutral photo as damaged, a red one as new.
    assert by_decision[ids[1]].grade == "E_damaged"
    assert by_decision[ids[1]].grade_probs["E_damaged"] > 0.5
    assert by_decision[ids[0]].grade is None  # only a blurry photo: nothing graded
    assert by_decision[ids[0]].outcome == "retake"

    report = shadow.shadow_report(svc.db)
    assert len(report.challengers) == 1
    c = report.challengers[0]
    n = len(pairs)
    assert c.challenger == "challenger-1" and c.compared == n == 5
    assert c.grade_agreement == round(sum(sh.grade == d.grade for sh, d in pairs) / n, 6)
    assert c.outcome_agreement == round(sum(sh.outcome == d.outcome for sh, d in pairs) / n, 6)
    auto = ("approved", "rejected")
    assert c.champion_side.auto_decision_rate == round(
        sum(d.outcome in auto for _, d in pairs) / n, 6
    )
    assert c.challenger_side.auto_decision_rate == round(
        sum(sh.outcome in auto for sh, _ in pairs) / n, 6
    )
    differ = {d.id for sh, d in pairs if sh.grade != d.grade or sh.outcome != d.outcome}
    assert differ and {ids[1], ids[2]} <= differ and ids[0] not in differ
    assert {x.decision_id for x in c.disagreements} == differ
    assert c.disagreements_total == len(differ)
    for x in c.disagreements:
        sh = by_decision[x.decision_id]
        assert (x.challenger_grade, x.challenger_outcome) == (sh.grade, sh.outcome)
        assert x.return_id == returns[x.decision_id]
    assert c.champion_side.reviewed == 0 and c.champion_side.accuracy is None

    # Each decision is graded once per challenger: a second submit stores nothing new.
    assert runner.submit(ids[1])
    assert runner.drain(timeout=60)
    assert len(_pairs(svc)) == 5 and runner.counts["already"] == 1
    limited = shadow.shadow_report(svc.db, limit=1).challengers[0]
    assert len(limited.disagreements) == 1 and limited.disagreements_total == len(differ)
    runner.close()


def test_a_reviewer_verdict_changes_the_accuracy_figures(
    svc: ReturnLensService, challenger_path: Path
) -> None:
    runner = _runner(svc, challenger_path)
    _, returns = _history(svc)
    assert runner.drain(timeout=60)
    r1, r3 = returns[next(iter(returns))], list(returns.values())[-1]
    before = shadow.shadow_report(svc.db).challengers[0]
    assert before.champion_side.reviewed == 0

    # The reviewer approves r1's reading (A_new: the champion's grade, not the challenger's).
    review.submit_review(
        svc, ReviewRequest(subject_type="return", subject_id=r1, verdict="approve"), reviewer="ann"
    )
    after = shadow.shadow_report(svc.db).challengers[0]
    assert (after.champion_side.reviewed, after.champion_side.correct) == (1, 1)
    assert (after.challenger_side.reviewed, after.challenger_side.correct) == (1, 0)
    assert after.champion_side.accuracy == 1.0 and after.challenger_side.accuracy == 0.0

    # r3 corrected to D_fair, which neither model read: both get one more reviewed return.
    review.submit_review(
        svc,
        ReviewRequest(subject_type="return", subject_id=r3, verdict="correct", grade="D_fair"),
        reviewer="ann",
    )
    last = shadow.shadow_report(svc.db).challengers[0]
    assert (last.champion_side.reviewed, last.champion_side.correct) == (2, 1)
    assert (last.challenger_side.reviewed, last.challenger_side.correct) == (2, 0)
    assert last.champion_side.accuracy == 0.5 and last.challenger_side.accuracy == 0.0
    runner.close()


def test_the_request_does_not_wait_for_the_challenger_and_a_full_queue_skips(
    svc: ReturnLensService, challenger_path: Path
) -> None:
    started, release = threading.Event(), threading.Event()

    def held(
        s: ReturnLensService, grader: Grader, policy: Policy, decision_id: str
    ) -> ShadowPrediction | None:
        started.set()
        assert release.wait(timeout=60)
        return shadow.grade_in_shadow(s, grader, policy, decision_id)

    runner = _runner(svc, challenger_path, max_pending=1, grade=held)
    rid = _return(svc, "o-1", "mug-01")
    out = shopper.upload_photos(svc, rid, [blurry(seed=1)])  # returns while held
    assert started.wait(timeout=60)
    assert not release.is_set() and runner.pending == 1
    assert out.decision.outcome == "retake"
    # The queue (one decision) is full: the next upload is answered, its shadow skipped.
    second = shopper.upload_photos(svc, rid, [clean(seed=1)])
    assert second.decision.outcome == "approved"
    assert runner.counts["skipped"] == 1
    assert _pairs(svc) == []
    release.set()
    assert runner.drain(timeout=60)
    assert [sh.decision_id for sh, _ in _pairs(svc)] == [out.decision.decision_id]
    status = runner.status()
    assert status.counts == {"submitted": 1, "skipped": 1, "stored": 1}
    assert status.pending == 0 and status.max_pending == 1
    runner.close()


def test_a_failing_challenger_never_reaches_the_request(
    svc: ReturnLensService, challenger_path: Path
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("challenger exploded")

    runner = _runner(svc, challenger_path, grade=broken)
    rid = _return(svc, "o-1", "mug-01")
    assert shopper.upload_photos(svc, rid, [clean(seed=1)]).decision.outcome == "approved"
    assert runner.drain(timeout=60)
    assert runner.counts["failed"] == 1 and _pairs(svc) == []
    runner.close()


# ------------------------------------------------------------------- start-up and API
def test_a_shadow_with_other_labels_refuses_start_up_in_one_sentence(
    tmp_path: Path, tiny_model: Path
) -> None:
    path = _challenger(tmp_path, "relabelled")
    card = card_of(path)
    write_card(path, replace(card, grade_labels=("new", "like_new", "good", "fair", "bad")))
    settings = make_settings(
        f"sqlite:///{tmp_path / 'api.db'}", tmp_path, tiny_model, shadow_model_path=path
    )
    with pytest.raises(ConfigError) as info, TestClient(create_app(settings)):
        pass
    message = str(info.value)
    assert "shadow model relabelled grades new, like_new, good, fair, bad" in message
    assert "champion test-0.1 grades A_new" in message
    assert "\n" not in message and message.count(".") <= 1


def test_a_shadow_that_does_not_load_is_a_warning_and_no_shadow(
    tmp_path: Path, tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx file")
    settings = make_settings(
        f"sqlite:///{tmp_path / 'api.db'}", tmp_path, tiny_model, shadow_model_path=bad
    )
    with TestClient(create_app(settings)) as client:
        shop = load_shop(client, settings)
        assert client.app.state.service.shadow is None  # type: ignore[attr-defined]
        rid, token = shop.open_return()
        assert shop.upload(rid, token, jpeg(scene(1, "box"))).status_code == 200
    assert any(
        "shadow model" in r.getMessage() and "no shadow" in r.getMessage() for r in caplog.records
    )
    missing = make_settings(
        f"sqlite:///{tmp_path / 'b.db'}", tmp_path, tiny_model, shadow_model_version="nope-1"
    )
    with TestClient(create_app(missing)) as client:
        assert client.get("/readyz").status_code == 200
        assert client.app.state.service.shadow is None  # type: ignore[attr-defined]


def test_the_live_service_shadows_uploads_and_reports_over_http_and_the_cli(
    tmp_path: Path, tiny_model: Path, challenger_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    settings = make_settings(url, tmp_path, tiny_model, shadow_model_path=challenger_path)
    with TestClient(create_app(settings)) as client:
        shop = load_shop(client, settings)
        svc: ReturnLensService = client.app.state.service  # type: ignore[attr-defined]
        assert svc.shadow is not None and svc.shadow.model_version == "challenger-1"
        rid, token = shop.open_return()
        r = shop.upload(rid, token, jpeg(scene(1, "box")))
        assert r.status_code == 200, r.text
        champion = r.json()["decision"]
        rid2, token2 = shop.open_return("ORD-2", email="bob@example.com")
        assert shop.upload(rid2, token2, jpeg(red(scene(3, "box")))).status_code == 200
        assert svc.shadow.drain(timeout=60)
        forbidden = client.get("/v1/admin/shadow", headers=shop.headers("reviewer"))
        assert forbidden.status_code == 403
        body = client.get("/v1/admin/shadow", headers={"X-API-Key": ADMIN_KEY}).json()
        assert body["queue"]["counts"]["stored"] == 2
        (section,) = body["challengers"]
        assert section["compared"] == 2
        first = next(d for d in section["disagreements"] if d["return_id"] == rid)
        assert first["champion_outcome"] == champion["outcome"]
        assert first["champion_grade"] == "A_new" and first["challenger_grade"] == "E_damaged"
        empty = client.get(
            "/v1/admin/shadow",
            params={"since": "2199-01-01T00:00:00Z"},
            headers={"X-API-Key": ADMIN_KEY},
        ).json()
        assert empty["challengers"] == []
    capsys.readouterr()
    assert main(["shadow", "report", "--database-url", url, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["challengers"] == body["challengers"] and printed["queue"] is None
    assert main(["shadow", "report", "--database-url", url]) == 0
    text = capsys.readouterr().out
    assert "challenger challenger-1 vs champion test-0.1: 2 decision(s) compared" in text
    assert "disagreements:" in text and first["decision_id"] in text
