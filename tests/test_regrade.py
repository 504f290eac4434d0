"""``returnlens regrade``: a challenger over stored history, on a process pool and on Ray.

A real shop (SQLite, photo store, tiny model) gets returns through the API: neutral
photos (the tiny model grades them A_new) and one red photo (E_damaged). A second tiny
model with another version is run over the stored decisions by the real command, in
spawned worker processes that build the service from the environment as the API does.
Checked: one prediction row per decision for that model, with the grade the tiny model
gives those photos; a second run finds nothing left to do (idempotent, resumable);
``--since`` limits the history; and Ray Data (a local Ray on 2 CPUs) stores the same.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from benchmarks.tiny_model import build_test_model
from returnlens.cli import main
from serving.storage.tables import Decision, ShadowPrediction
from tests.requires import missing
from tests.shop import Shop, jpeg, red, scene


def _history(shop: Shop) -> dict[str, str]:
    """Three returns with one upload each; decision id -> the grade the tiny model gives."""
    expected: dict[str, str] = {}
    for i, (rgb, grade) in enumerate(
        [
            (scene(1, "box"), "A_new"),
            (scene(3, "box"), "A_new"),
            (red(scene(4, "box")), "E_damaged"),
        ]
    ):
        rid, token = shop.open_return(reason="changed_mind" if i < 2 else "damaged_in_transit")
        body = shop.upload(rid, token, jpeg(rgb)).json()
        expected[body["decision"]["decision_id"]] = grade
    return expected


def _rows(url: str, version: str) -> dict[str, str | None]:
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            rows = s.execute(
                select(ShadowPrediction.decision_id, ShadowPrediction.grade).where(
                    ShadowPrediction.model_version == version
                )
            ).all()
            assert s.scalar(select(Decision.id).limit(1)) is not None
    finally:
        engine.dispose()
    return {d: g for d, g in rows}


def _regrade(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    capsys.readouterr()
    code = main(["regrade", "--json", *argv])
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert code == (1 if out["failed"] else 0)
    return out


@pytest.fixture
def history(
    sqlite_shop: Shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Shop, dict[str, str]]:
    """The shop's settings in the environment, where the spawned workers read them."""
    s = sqlite_shop.settings
    for name, value in {
        "DATABASE_URL": s.database_url,
        "DATA_DIR": s.data_dir,
        "PHOTO_DIR": s.photo_dir,
        "MODEL_PATH": s.model_path,
        "ADMIN_KEY": s.admin_key.get_secret_value() if s.admin_key else "",
    }.items():
        monkeypatch.setenv(f"RETURNLENS_{name}", str(value))
    return sqlite_shop, _history(sqlite_shop)


def test_regrade_on_a_process_pool_stores_one_prediction_per_decision(
    history: tuple[Shop, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop, expected = history
    url = shop.settings.database_url
    model = build_test_model(tmp_path / "challenger.onnx", version="test-challenger")
    future = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert _regrade(capsys, "--model", str(model), "--since", future)["decisions"] == 0
    assert _rows(url, "test-challenger") == {}

    first = _regrade(capsys, "--model", str(model), "--workers", "2")
    assert (first["decisions"], first["stored"], first["failed"]) == (3, 3, 0)
    assert first["photos"] == 3 and first["engine"] == "local"
    assert _rows(url, "test-challenger") == expected

    again = _regrade(capsys, "--model", str(model), "--workers", "2")
    assert (again["decisions"], again["stored"]) == (0, 0)  # nothing left: resumable
    assert _rows(url, "test-challenger") == expected


def test_regrade_on_ray_data_stores_the_same(
    history: tuple[Shop, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        missing("ray is not installed: the ray engine needs the scale extra (make venv has it)")
    shop, expected = history
    model = build_test_model(tmp_path / "challenger.onnx", version="test-ray")
    out = _regrade(capsys, "--model", str(model), "--engine", "ray", "--workers", "2")
    assert (out["decisions"], out["stored"], out["failed"], out["engine"]) == (3, 3, 0, "ray")
    assert _rows(shop.settings.database_url, "test-ray") == expected


def test_regrade_refuses_an_unknown_model_with_a_sentence(
    history: tuple[Shop, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["regrade", "--model", "no-such-version"]) != 0
    assert "no-such-version" in capsys.readouterr().err


def test_regrade_runs_as_a_background_job(
    history: tuple[Shop, dict[str, str]], tmp_path: Path
) -> None:
    """The ``regrade`` job (huey's immediate mode: it runs in this thread) stores the same
    predictions as the command, and its row says done with the command's summary."""
    from serving.services.jobs import open_queue
    from serving.storage.db import Database
    from serving.storage.tables import Job

    shop, expected = history
    model = build_test_model(tmp_path / "challenger.onnx", version="test-job")
    db = Database(shop.settings.database_url)
    queue = open_queue(shop.settings, db, immediate=True)
    try:
        job_id = queue.enqueue("regrade", model=str(model), workers=1)
        with db.read() as s:
            job = s.get(Job, job_id)
            assert job is not None and (job.status, job.attempts) == ("done", 1)
    finally:
        queue.close()
        db.dispose()
    assert _rows(shop.settings.database_url, "test-job") == expected
