"""Champion and challenger: ``returnlens model promote|rollback|history`` (issue 16).

Real ONNX models (``benchmarks/tiny_model.py``: the grade follows the photo's redness)
graded on flat-colour photos whose redness sits on each grade's centre, so the stock
model grades them all right; a variant with two grade centres swapped grades B and C
wrong. The shipped default model is swapped for a tiny one (the 17 MB file is
exercised by the scenario tests), and no deployment database is configured.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from benchmarks.tiny_model import GRADES, build_test_model
from returnlens.cli import main
from serving.commands import model_promote
from training.compare import HeldOut, compare_models, load_held_out
from vision.errors import ModelError
from vision.manifest import ManifestHeader, ManifestRecord
from vision.manifest.write import write_manifest
from vision.model import OnnxModel
from vision.registry import ModelRegistry, card_of, write_card


def _model(tmp: Path, version: str, centers: list[float] | None = None) -> Path:
    """The tiny model; ``centers`` moves the grade centres (a worse grader)."""
    path = build_test_model(tmp / "src" / f"{version}.onnx", version=version)
    if centers is not None:
        model = onnx.load(str(path))
        for i, init in enumerate(model.graph.initializer):
            if init.name == "centers":
                arr = np.array([centers], dtype=np.float32)
                model.graph.initializer[i].CopyFrom(numpy_helper.from_array(arr, "centers"))
        onnx.save(model, str(path))
    return path


SWAPPED = [0.0, 0.5, 0.25, 0.75, 1.0]  # B and C swapped: 2 grades in 5 wrong


def _manifest(root: Path, per_grade: int = 3) -> Path:
    """Flat photos whose redness t = k/4 is grade k's centre; all in the test split."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for k, grade in enumerate(GRADES):
        for j in range(per_grade):
            t = k / 4
            rgb = np.full((64, 64, 3), (round(60 + 127.5 * t), 60, 60), dtype=np.uint8)
            name = root / "images" / f"{grade}-{j}.png"
            cv2.imwrite(str(name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            records.append(
                ManifestRecord(
                    id=f"{grade}-{j}",
                    image=name,
                    grade=grade,
                    damage=(),
                    category="test",
                    sku=f"sku-{j}",
                    split="test",
                )
            )
    path = root / "manifest.jsonl"
    write_manifest(path, ManifestHeader(GRADES, ("scratch",), source="test"), records)
    return path


@pytest.fixture(autouse=True)
def _no_deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped model is a tiny one; no deployment database."""
    monkeypatch.delenv("RETURNLENS_DATABASE_URL", raising=False)
    monkeypatch.delenv("RETURNLENS_POLICY_PATH", raising=False)
    shipped = _model(tmp_path / "shipped", "shipped-1")
    monkeypatch.setattr(model_promote, "shipped_model", lambda: shipped)


def _cli(root: Path, *args: str) -> int:
    return main(["model", "--models-dir", str(root), *args])


def test_the_shipped_model_is_the_first_version_and_champion(tmp_path: Path) -> None:
    root = tmp_path / "models"
    reg = ModelRegistry(root)
    reg.register(_model(tmp_path, "v2"))
    assert _cli(root, "list") == 0
    assert "shipped-1" in reg.versions()
    champion = reg.promoted()
    assert champion is not None and champion.version == "shipped-1"
    assert champion.path == root / "shipped-1" / "model.onnx"  # a copy, not a reference
    (first,) = reg.promotion_log()
    assert first["action"] == "bootstrap" and first["previous"] is None
    assert reg.ensure_shipped(model_promote.shipped_model()).version == "shipped-1"
    assert len(reg.promotion_log()) == 1  # idempotent


def test_promote_refuses_a_worse_challenger_and_prints_both_sides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, data = tmp_path / "models", _manifest(tmp_path / "data")
    reg = ModelRegistry(root)
    reg.register(_model(tmp_path, "worse", SWAPPED))
    args = ("--data", str(data), "--threshold", "0.5", "--reason", "weekly retrain")
    assert _cli(root, "promote", "worse", *args) == 2
    out, err = capsys.readouterr()
    assert "champion shipped-1" in out and "challenger worse" in out
    assert "100.00%" in out and "60.00%" in out  # accuracy of both sides
    assert "held-out photos: 15" in out
    assert "refused: challenger worse is worse than champion shipped-1 on accuracy, MAE" in err
    assert reg.promoted().version == "shipped-1"  # type: ignore[union-attr]
    assert [r["action"] for r in reg.promotion_log()] == ["bootstrap"]


def test_promote_accepts_a_better_challenger_and_records_the_comparison(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, data = tmp_path / "models", _manifest(tmp_path / "data")
    reg = ModelRegistry(root)
    reg.register(_model(tmp_path, "worse", SWAPPED))
    reg.promote("worse", reason="setup")  # the champion is the worse grader
    reg.register(_model(tmp_path, "better"))
    assert (
        _cli(root, "promote", "better", "--data", str(data), "--reason", "fixes B/C", "--by", "ana")
        == 0
    )
    out = capsys.readouterr().out
    assert "promoted better over worse" in out
    assert reg.promoted().version == "better"  # type: ignore[union-attr]
    rec = reg.promotion_log()[-1]
    assert rec["by"] == "ana" and rec["reason"] == "fixes B/C" and rec["forced"] is False
    assert rec["previous"] == "worse" and rec["promoted_at"]
    cmp = rec["comparison"]
    assert cmp["worse"] == [] and cmp["champion"]["accuracy"] == 0.6
    assert cmp["challenger"]["accuracy"] == 1.0
    # No --threshold: the deployment's policy leaves it to the card, the card has none.
    assert cmp["challenger"]["threshold_source"] in {"default", "model card", "policy"}
    assert cmp["held_out"] == [{"source": str(data), "selection": "split test", "photos": 15}]
    assert _cli(root, "history") == 0
    assert "better (was worse)  by ana" in capsys.readouterr().out


def test_force_overrides_and_is_recorded_then_rollback_restores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, data = tmp_path / "models", _manifest(tmp_path / "data")
    reg = ModelRegistry(root)
    reg.register(_model(tmp_path, "worse", SWAPPED))
    args = ("--data", str(data), "--threshold", "0.5", "--reason", "hotfix")
    assert _cli(root, "promote", "worse", *args, "--force") == 0
    rec = reg.promotion_log()[-1]
    assert rec["forced"] is True and rec["comparison"]["worse"]
    assert reg.promoted().version == "worse"  # type: ignore[union-attr]
    assert "(forced)" in capsys.readouterr().out

    assert _cli(root, "rollback", "--reason", "B/C swapped", "--by", "ops") == 0
    assert reg.promoted().version == "shipped-1"  # type: ignore[union-attr]
    last = reg.promotion_log()[-1]
    assert last["action"] == "rollback" and last["previous"] == "worse" and last["by"] == "ops"
    assert "rolled back from worse to shipped-1" in capsys.readouterr().out
    # Nothing before the shipped model: a second rollback has nowhere to go.
    assert _cli(root, "rollback", "--reason", "again") == 2
    assert "no previous champion" in capsys.readouterr().err


def test_rollback_walks_back_through_the_champions(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    for v in ("a", "b", "c"):
        reg.register(_model(tmp_path, v))
        reg.promote(v, reason=f"release {v}")
    assert reg.champion_history() == ["a", "b", "c"]
    assert reg.rollback(reason="c is broken").version == "b"
    assert reg.rollback(reason="b too").version == "a"
    with pytest.raises(ModelError, match="no previous champion"):
        reg.rollback(reason="nothing left")


def test_a_challenger_with_other_grade_labels_is_refused_in_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, data = tmp_path / "models", _manifest(tmp_path / "data")
    path = _model(tmp_path, "relabelled")
    card = card_of(path)
    write_card(path, replace(card, grade_labels=("new", "like_new", "good", "fair", "bad")))
    ModelRegistry(root).register(path)
    assert _cli(root, "promote", "relabelled", "--data", str(data), "--reason", "x", "--force") == 2
    err = capsys.readouterr().err.strip()
    assert "challenger relabelled grades new, like_new, good, fair, bad" in err
    assert "champion shipped-1 grades A_new" in err
    assert err.count(".") <= 2 and "Traceback" not in err and "\n" not in err
    assert ModelRegistry(root).promoted().version == "shipped-1"  # type: ignore[union-attr]


def test_a_challenger_that_does_not_load_is_refused_before_the_switch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, data = tmp_path / "models", _manifest(tmp_path / "data")
    reg = ModelRegistry(root)
    entry = reg.register(_model(tmp_path, "corrupt"))
    entry.path.write_bytes(entry.path.read_bytes()[:200])  # damaged on disk after registering
    promoted_before = (root / "PROMOTED").read_bytes() if (root / "PROMOTED").exists() else None
    code = _cli(root, "promote", "corrupt", "--data", str(data), "--reason", "x", "--force")
    assert code == 2
    assert "'corrupt' is refused: it does not load" in capsys.readouterr().err
    champion = reg.promoted()
    assert champion is not None and champion.version == "shipped-1"
    assert promoted_before is None or (root / "PROMOTED").read_bytes() == promoted_before
    assert [r["version"] for r in reg.promotion_log()] == ["shipped-1"]
    with pytest.raises(ModelError, match="does not load"):
        reg.promote("corrupt", reason="api")  # the registry itself checks too
    assert reg.promoted().version == "shipped-1"  # type: ignore[union-attr]


def test_promote_without_held_out_labels_needs_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "models"
    reg = ModelRegistry(root)
    reg.register(_model(tmp_path, "v2"))
    assert _cli(root, "promote", "v2", "--reason", "x") == 2
    assert "no held-out labels" in capsys.readouterr().err
    assert _cli(root, "promote", "v2", "--reason", "x", "--force") == 0
    rec = reg.promotion_log()[-1]
    assert rec["forced"] is True and rec["comparison"] is None


def test_compare_models_scores_auto_decisions_at_each_models_threshold(tmp_path: Path) -> None:
    data = load_held_out(_manifest(tmp_path / "data"))  # a test split alone is enough
    good = OnnxModel(_model(tmp_path, "good"), intra_op_threads=1)
    worse = OnnxModel(_model(tmp_path, "worse", SWAPPED), intra_op_threads=1)
    held = [HeldOut.from_manifest(data, "test")]
    cmp = compare_models(good, worse, held, threshold_for=lambda card: (0.99, "policy"))
    assert cmp.champion.auto_share == 0.0 and cmp.champion.auto_precision is None
    assert "auto_precision" not in cmp.worse  # nothing auto-decided: not comparable
    cmp = compare_models(good, worse, held, threshold_for=lambda card: (0.5, "policy"))
    assert cmp.champion.auto_precision == 1.0 and cmp.challenger.auto_precision == 0.6
    assert set(cmp.worse) == {"accuracy", "mae", "auto_precision"} | (
        {"ece"} if cmp.challenger.ece > cmp.champion.ece else set()  # type: ignore[operator]
    )
    assert compare_models(good, good, held).worse == []
    assert json.loads(json.dumps(cmp.to_dict()))["challenger"]["version"] == "worse"


def test_the_deployments_reviewed_labels_are_compared_on_and_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--database-url: the reviewed labels join the held-out photos; an audit row is written.

    The export itself is ``dataset export-reviewed`` (tests/test_review_loop.py); here it is
    replaced by a manifest of the same shape, and the database is a real migrated one.
    """
    from serving.storage.db import Database
    from serving.storage.repo import audit_rows

    url = f"sqlite:///{tmp_path / 'returnlens.db'}"
    db = Database(url)
    db.upgrade()
    # Nobody has reviewed anything yet: the real export answers None, not an error.
    assert model_promote.reviewed_labels(url, tmp_path / "photos", tmp_path / "x", 0.2) is None
    calls: list[tuple[str, float]] = []

    def exported(url_: str, photos: Path | None, out: Path, fraction: float) -> Path:
        calls.append((url_, fraction))
        return _manifest(out)

    monkeypatch.setattr(model_promote, "reviewed_labels", exported)
    root = tmp_path / "models"
    reg = ModelRegistry(root)
    reg.register(_model(tmp_path, "worse", SWAPPED))
    reg.promote("worse", reason="setup")
    reg.register(_model(tmp_path, "better"))
    argv = ("--database-url", url, "--reviewed", "all", "--threshold", "0.5")
    assert _cli(root, "promote", "better", *argv, "--reason", "reviewed labels say so") == 0
    assert calls == [(url, 0.2)]
    held = reg.promotion_log()[-1]["comparison"]["held_out"]
    assert held == [
        {
            "source": "the deployment's reviewed labels",
            "selection": "all reviewed labels",
            "photos": 15,
        }
    ]
    with db.read() as s:
        (row,) = audit_rows(s, "model", "better")
    assert row.action == "model_promote" and row.actor == f"cli:{row.payload['by']}"
    assert row.payload["previous"] == "worse" and row.payload["forced"] is False
    db.dispose()


def test_a_champion_that_no_longer_loads_can_be_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Serving cannot run a broken champion: any loadable challenger may replace it."""
    root, data = tmp_path / "models", _manifest(tmp_path / "data")
    reg = ModelRegistry(root)
    reg.register(_model(tmp_path, "v2"))
    assert _cli(root, "list") == 0  # bootstraps the shipped model as champion
    shipped = reg.get("shipped-1").path
    shipped.write_bytes(b"damaged")
    assert _cli(root, "promote", "v2", "--data", str(data), "--reason", "repair") == 0
    assert "champion shipped-1 does not load" in capsys.readouterr().err
    rec = reg.promotion_log()[-1]
    assert rec["version"] == "v2" and rec["comparison"] == {
        "skipped": "the champion shipped-1 does not load"
    }


def test_the_policy_threshold_is_resolved_per_model_card(tmp_path: Path) -> None:
    path = _model(tmp_path, "carded")
    card = replace(card_of(path), thresholds={"auto_approve_confidence": 0.83})
    resolve = model_promote.policy_threshold(None)  # the shipped policy leaves it to the card
    assert resolve(card) == (0.83, "model card")
    assert resolve(card_of(path)) == (0.7, "default")


def test_promote_json_prints_the_comparison_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, data = tmp_path / "models", _manifest(tmp_path / "data")
    ModelRegistry(root).register(_model(tmp_path, "v2"))
    assert _cli(root, "promote", "v2", "--data", str(data), "--reason", "x", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["worse"] == [] and out["champion"]["version"] == "shipped-1"


def test_the_comparison_is_torch_free() -> None:
    """`model promote` runs in a serving install (no torch)."""
    import subprocess
    import sys

    code = (
        "import sys, training.compare, training.cli_model, serving.commands.model_promote; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=False
    )
    assert done.returncode == 0, done.stderr
