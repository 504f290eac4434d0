"""Replay and what-if (``serving.services.replay``, ``returnlens replay``,
``returnlens policy simulate``), on SQLite and PostgreSQL with the tiny model.

Decisions are made through the service from real photos; replay re-grades the stored
photos and re-decides under the stored policy text; simulate re-decides the stored rows
under a stricter policy, and the expected changes are computed here from the rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, update

from returnlens.cli import main
from serving.domain_errors import NotFound
from serving.policy import Policy, default_policy_path, parse_policy
from serving.services import policies, replay, shopper
from serving.services.inputs import CreateReturnRequest
from serving.services.policies import policy_text, text_version
from serving.services.service import ReturnLensService
from serving.storage.tables import Decision, Photo, PolicyVersion
from tests.service_data import NOW, blurry, clean, damaged
from vision.errors import ConfigError

STRICT = 0.999


def new_return(svc: ReturnLensService, order: str, sku: str) -> str:
    req = CreateReturnRequest(order_id=order, sku=sku, reason="changed_mind")
    return shopper.create_return(svc, req).return_id


def make_history(svc: ReturnLensService) -> list[str]:
    """Five decisions: a retake then an approval, an approval, and two reviews of a
    damaged item (the second also reads the first upload's stored photo)."""
    r1 = new_return(svc, "o-1", "mug-01")
    ids = [shopper.upload_photos(svc, r1, [blurry(seed=1)]).decision.decision_id]
    ids.append(shopper.upload_photos(svc, r1, [clean(seed=1)]).decision.decision_id)
    r2 = new_return(svc, "o-1", "box-02")
    ids.append(shopper.upload_photos(svc, r2, [clean(seed=2, corner="br")]).decision.decision_id)
    r3 = new_return(svc, "o-2", "mug-01")
    ids.append(shopper.upload_photos(svc, r3, [damaged(seed=3)]).decision.decision_id)
    ids.append(shopper.upload_photos(svc, r3, [clean(seed=4)]).decision.decision_id)
    return ids


def policy_with(**confidence: Any) -> tuple[Policy, str]:
    """The shipped policy with ``confidence`` keys overridden: the policy and its YAML."""
    data = yaml.safe_load(default_policy_path().read_text(encoding="utf-8"))
    data["confidence"].update(confidence)
    text = yaml.safe_dump(data)
    return parse_policy(text, source="strict.yaml"), text


def test_decisions_made_through_the_service_replay_as_reproduced(svc: ReturnLensService) -> None:
    ids = make_history(svc)
    with svc.db.read() as s:
        outcomes = [s.get(Decision, i).outcome for i in ids]  # type: ignore[union-attr]
        stored = s.scalars(select(PolicyVersion)).all()
    assert outcomes == ["retake", "approved", "approved", "needs_review", "needs_review"]
    # The policy text was stored once, under its version, and hashes to it.
    assert [p.version for p in stored] == [svc.policy.version]
    assert stored[0].text == policy_text(svc.policy)
    assert text_version(stored[0].text) == svc.policy.version
    for decision_id in ids:
        result = replay.replay_decision(svc, decision_id)
        assert result.reproduced, (decision_id, [d.line() for d in result.differences])
        assert result.differences == ()
        assert result.replayed.outcome == result.original.outcome
        assert result.replayed.policy_version == svc.policy.version


def test_a_tampered_score_or_another_policy_is_not_reproduced(svc: ReturnLensService) -> None:
    ids = make_history(svc)
    approved = ids[1]
    with svc.db.write() as s:
        s.execute(update(Decision).where(Decision.id == approved).values(confidence=0.5))
    result = replay.replay_decision(svc, approved)
    assert not result.reproduced
    assert [d.field for d in result.differences] == ["confidence"]
    assert result.differences[0].original == 0.5
    assert result.replayed.outcome == "approved"

    strict, _ = policy_with(min_grade_confidence=STRICT)
    other = replay.replay_decision(svc, ids[2], policy=strict)
    assert not other.reproduced
    fields = {d.field: d for d in other.differences}
    assert fields["outcome"].original == "approved"
    assert fields["outcome"].replayed == "needs_review"
    assert fields["policy_version"].replayed == strict.version
    assert any(f.startswith("low_confidence:") for f in other.replayed.flags)


def test_simulate_reports_what_a_stricter_threshold_changes(svc: ReturnLensService) -> None:
    make_history(svc)
    strict, _ = policy_with(min_grade_confidence=STRICT)
    with svc.db.read() as s:
        rows = s.scalars(select(Decision)).all()
    # Expected independently from the stored rows: approvals below the new threshold.
    expected = {r.id for r in rows if r.outcome == "approved" and (r.confidence or 0.0) < STRICT}
    assert expected  # the tiny model is never that sure
    result = replay.simulate_policy(svc.db, strict, since=NOW)
    assert result.decisions == len(rows)
    assert {c.decision_id for c in result.changed} == expected
    assert dict(result.transitions) == {("approved", "needs_review"): len(expected)}

    # The unchanged policy changes nothing; a window after the decisions holds none.
    same = replay.simulate_policy(svc.db, svc.policy, since=NOW)
    assert same.decisions == len(rows) and same.changed == ()
    later = replay.simulate_policy(svc.db, strict, since=NOW.replace(hour=13))
    assert later.decisions == 0 and later.changed == ()


def test_replay_refusals_are_one_sentence(svc: ReturnLensService) -> None:
    ids = make_history(svc)
    with pytest.raises(NotFound) as err:
        replay.replay_decision(svc, "dec_nope")
    assert err.value.code == "unknown_decision"

    with svc.db.write() as s:  # altered text: the hash check refuses it
        s.execute(update(PolicyVersion).values(text=policy_text(svc.policy).replace("0", "1")))
    with pytest.raises(ConfigError) as cfg:
        replay.replay_decision(svc, ids[1])
    assert cfg.value.code == "policy_text_mismatch"

    with svc.db.write() as s:
        s.query(PolicyVersion).delete()
    with pytest.raises(NotFound) as err:
        replay.replay_decision(svc, ids[1])
    assert err.value.code == "unknown_policy_version"
    assert svc.policy.version in err.value.message

    approved_id = ids[2]
    with svc.db.read() as s:
        digest = s.scalars(
            select(Photo.digest).where(
                Photo.id.in_(s.get(Decision, approved_id).photo_ids)  # type: ignore[union-attr]
            )
        ).one()
    svc.photos.path(digest).unlink()
    with svc.db.write() as s:  # the text back, so the photo is what is missing
        s.add(
            PolicyVersion(
                version=svc.policy.version,
                name=svc.policy.spec.name,
                text=policy_text(svc.policy),
                created_at=NOW,
            )
        )
    with pytest.raises(NotFound) as err:
        replay.replay_decision(svc, approved_id)
    assert err.value.code == "photo_missing" and "photo store" in err.value.message

    with svc.db.write() as s:  # made by a model neither served nor registered
        s.execute(update(Decision).where(Decision.id == ids[3]).values(model_version="gone-9"))
    with pytest.raises(NotFound) as err:
        replay.replay_decision(svc, ids[3], models_dir=svc.photos.root / "no-registry")
    assert err.value.code == "model_unavailable" and "gone-9" in err.value.message


def test_the_policy_text_is_recorded_once_per_version(svc: ReturnLensService) -> None:
    for _ in range(2):  # two workers, or the same one twice: one row, no conflict
        with svc.db.write() as s:
            policies.record_policy(s, svc.policy, NOW)
            policies.record_policy(s, svc.policy, NOW)
    with svc.db.read() as s:
        rows = s.scalars(select(PolicyVersion)).all()
        rebuilt = policies.stored_policy(s, svc.policy.version)
    assert [r.version for r in rows] == [svc.policy.version]
    assert rebuilt.version == svc.policy.version
    assert rebuilt.resolved() == svc.policy.resolved()


def test_the_replay_and_simulate_commands(
    svc: ReturnLensService,
    db_url: str,
    tiny_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = make_history(svc)
    where = [
        "--database-url",
        db_url,
        "--photo-dir",
        str(svc.photos.root),
        "--model-path",
        str(tiny_model),
    ]
    assert main(["replay", ids[1], *where]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"REPRODUCED {ids[1]}")

    assert main(["replay", ids[1], *where, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reproduced"] is True and data["differences"] == []

    strict, text = policy_with(min_grade_confidence=STRICT)
    policy_file = tmp_path / "strict.yaml"
    policy_file.write_text(text, encoding="utf-8")
    assert main(["replay", ids[1], *where, "--policy", str(policy_file)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("NOT REPRODUCED") and "outcome: 'approved' -> 'needs_review'" in out

    assert main(["replay", "dec_nope", *where]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: There is no decision 'dec_nope'. [unknown_decision]"]

    sim = ["policy", "simulate", str(policy_file), "--since", NOW.date().isoformat()]
    sim += ["--database-url", db_url, "--model", str(tiny_model)]
    assert main([*sim, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["policy_version"] == strict.version
    assert report["decisions"] == len(ids)
    changed = [c["decision_id"] for c in report["changed_decisions"]]
    assert report["changed"] == len(changed) >= 1
    assert report["transitions"] == [
        {"from": "approved", "to": "needs_review", "count": len(changed)}
    ]
    assert main([*sim, "--limit", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"policy {strict.version}: {len(changed)} of {len(ids)} decision(s)")
    assert lines[1] == f"  approved -> needs_review: {len(changed)}"
    assert lines[2].startswith(f"  {changed[0]} ")

    with pytest.raises(SystemExit):  # argparse: usage and exit 2
        main(["policy", "simulate", str(policy_file), "--since", "yesterday"])


def test_a_policy_fitted_to_other_labels_rebuilds_from_its_stored_text() -> None:
    """A model with two grades and no damage labels serves a fitted policy; its stored
    text must rebuild that fitted policy (same version, same grade mapping, same
    decisions), or decisions made under it could never be replayed."""
    from serving.policy import load_policy

    fitted = load_policy().fitted_to(("ok", "damaged"), ())
    assert fitted.fit is not None
    text = policy_text(fitted)
    rebuilt = policies.policy_from_text(text, fitted.version)
    assert rebuilt.version == fitted.version == text_version(text)
    assert rebuilt.fit is not None
    assert rebuilt.fit.as_dict() == fitted.fit.as_dict()
    # Already fitted to these labels: fitting again is the identity, as at decision time.
    assert rebuilt.fitted_to(("ok", "damaged"), ()) is rebuilt
    assert policy_text(rebuilt) == text
