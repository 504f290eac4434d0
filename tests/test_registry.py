"""The model registry and ``returnlens model list|show|promote`` (torch-free).

Models are real contract-valid ONNX files from benchmarks/tiny_model.py; the registry reads
their cards from metadata_props exactly as it does for exported models.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.tiny_model import build_test_model
from returnlens.cli import main
from vision.errors import ModelError
from vision.model import OnnxModel
from vision.registry import (
    MODELS_DIR_ENV,
    ModelRegistry,
    card_of,
    default_models_dir,
    write_card,
)


def _model(tmp: Path, version: str, created: str = "2026-01-01T00:00:00+00:00") -> Path:
    path = build_test_model(tmp / "src" / f"{version}.onnx", version=version)
    card = card_of(path)
    write_card(path, replace(card, created_at=created, metrics={"accuracy": 0.9}))
    return path


def test_register_list_get(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    assert reg.list() == [] and reg.promoted() is None
    entry = reg.register(_model(tmp_path, "v2", "2026-02-01T00:00:00+00:00"))
    reg.register(_model(tmp_path, "v1", "2026-01-01T00:00:00+00:00"))
    assert entry.path == tmp_path / "models" / "v2" / "model.onnx"
    assert [e.version for e in reg.list()] == ["v1", "v2"]  # oldest first
    card = json.loads((tmp_path / "models" / "v2" / "card.json").read_text())
    assert card["model_version"] == "v2"
    got = reg.get("v2")
    assert got.card.metrics["accuracy"] == 0.9 and got.int8_path is None
    assert OnnxModel(got.path).version == "v2"  # the copied file still loads


def test_register_is_idempotent_but_versions_are_immutable(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    src = _model(tmp_path, "v1")
    reg.register(src)
    reg.register(src)  # the identical file again: fine
    other = build_test_model(tmp_path / "other.onnx", version="v1")  # same version, other bytes
    with pytest.raises(ModelError, match="already registered with a different file") as err:
        reg.register(other)
    assert err.value.code == "version_exists"


def test_register_refuses_bad_files_and_mismatched_version(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    with pytest.raises(ModelError) as err:
        reg.register(tmp_path / "missing.onnx")
    assert err.value.code == "model_not_found"
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ModelError) as err:
        reg.register(junk)
    assert err.value.code == "invalid_model"
    with pytest.raises(ModelError, match="differs from the card") as err:
        reg.register(_model(tmp_path, "v1"), version="v9")
    assert reg.list() == []


def test_int8_variant_is_kept_beside_the_model(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    entry = reg.register(_model(tmp_path, "v1"), int8_path=_model(tmp_path, "v1-int8"))
    assert entry.int8_path == tmp_path / "models" / "v1" / "model.int8.onnx"
    with pytest.raises(ModelError, match="not the int8 variant"):
        reg.register(_model(tmp_path, "v2"), int8_path=_model(tmp_path, "v3-int8"))


def test_unknown_version_lists_what_exists(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    reg.register(_model(tmp_path, "v1"))
    reg.register(_model(tmp_path, "v2"))
    with pytest.raises(ModelError, match=r"'nope' is not in the registry.*available: v1, v2"):
        reg.get("nope")
    with pytest.raises(ModelError, match="available"):
        reg.promote("../etc")


def test_promote_and_resolve(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    default = tmp_path / "packaged.onnx"
    with pytest.raises(ModelError, match="no model is promoted") as err:
        reg.resolve(None)
    assert err.value.code == "model_not_found"
    assert reg.resolve(None, default=default) == default
    reg.register(_model(tmp_path, "v1"))
    reg.register(_model(tmp_path, "v2"))
    assert reg.resolve(None, default=default) == default  # registered but not promoted
    reg.promote("v1", by="tester", reason="first")
    record = json.loads((tmp_path / "models" / "PROMOTED").read_text())
    assert record["version"] == "v1" and record["by"] == "tester" and record["promoted_at"]
    assert record["reason"] == "first" and record["forced"] is False
    assert reg.resolve(None, default=default) == reg.get("v1").path
    assert reg.resolve("v2") == reg.get("v2").path  # an explicit version wins
    assert [e.version for e in reg.list() if e.promoted] == ["v1"]
    reg.promote("v2")
    promoted = reg.promoted()
    assert promoted is not None and promoted.version == "v2"


def test_corrupt_promotion_record_is_a_model_error(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    reg.register(_model(tmp_path, "v1"))
    (tmp_path / "models" / "PROMOTED").write_text("{broken")
    with pytest.raises(ModelError, match="not a valid promotion record"):
        reg.resolve(None)


def test_models_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "elsewhere"))
    assert default_models_dir() == tmp_path / "elsewhere"
    assert ModelRegistry().root == tmp_path / "elsewhere"
    monkeypatch.delenv(MODELS_DIR_ENV)
    assert default_models_dir() == Path("models")


def test_cli_model_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "models"
    reg = ModelRegistry(root)
    reg.register(_model(tmp_path, "v1"))
    reg.register(_model(tmp_path, "v2", "2026-03-01T00:00:00+00:00"))
    # No held-out labels to compare on: a promotion over the champion needs --force.
    promote = ["model", "--models-dir", str(root), "promote", "--reason", "test"]
    assert main([*promote, "v2"]) == 2
    assert "no held-out labels" in capsys.readouterr().err
    assert main([*promote, "v2", "--force"]) == 0
    capsys.readouterr()
    assert main(["model", "--models-dir", str(root), "list"]) == 0
    out = capsys.readouterr().out
    assert "VERSION" in out and "90.0%" in out
    promoted_rows = [line for line in out.splitlines() if line.startswith("*")]
    assert len(promoted_rows) == 1 and "v2" in promoted_rows[0]
    assert main(["model", "--models-dir", str(root), "show", "v1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model_version"] == "v1"
    assert main(["model", "--models-dir", str(root), "show", "v1"]) == 0
    assert "test-linear" in capsys.readouterr().out
    assert main(["model", "--models-dir", str(root), "show", "v7"]) == 2
    err = capsys.readouterr().err
    assert "available: v1, v2" in err and "Traceback" not in err
    assert main([*promote, "v7"]) == 2


def test_model_show_prints_calibration_and_threshold_provenance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`model show` says how the card's temperature and thresholds were chosen."""
    root = tmp_path / "models"
    reg = ModelRegistry(root)
    old = build_test_model(tmp_path / "src" / "old.onnx", version="old")
    reg.register(old)
    path = build_test_model(tmp_path / "src" / "new.onnx", version="new")
    card = card_of(path)
    calibration = {"ece_before": 0.122, "ece_after": 0.188, "val_photos": 80, "kept": "T=1"}
    targets = {"auto_approve_confidence": {"precision": 0.98}}
    write_card(
        path,
        replace(
            card,
            thresholds={"auto_approve_confidence": 0.83},
            metrics={"calibration": calibration, "thresholds": targets},
        ),
    )
    reg.register(path)
    assert main(["model", "--models-dir", str(root), "show", "new"]) == 0
    out = capsys.readouterr().out
    assert "ECE 0.122 before, 0.188 after" in out and "kept T=1" in out
    assert "auto_approve_confidence = 0.83" in out and '"precision": 0.98' in out
    assert main(["model", "--models-dir", str(root), "show", "old"]) == 0
    assert "calibration  not recorded" in capsys.readouterr().out
