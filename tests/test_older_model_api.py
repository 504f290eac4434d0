"""An older model (no unfamiliarity score) behind the real app: it loads with one clear
warning, ``/readyz`` and ``/v1/model`` say it cannot tell, and every upload and dock
inspection goes to a person (``model_cannot_tell``) instead of failing. The model with the
score says so too. SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.policy.shopper import CANNOT_TELL_MESSAGE
from tests.shop import Shop, jpeg, load_shop, make_settings, scene

NOTE = "cannot tell photos it has never seen"


@pytest.fixture(scope="module")
def older_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from benchmarks.tiny_model import build_test_model

    return build_test_model(
        tmp_path_factory.mktemp("older") / "older.onnx", version="test-old", unfamiliarity=False
    )


@pytest.fixture
def older_shop(
    db_url: str, tmp_path: Path, older_model: Path, caplog: pytest.LogCaptureFixture
) -> Iterator[Shop]:
    caplog.set_level(logging.WARNING, logger="returnlens.app")
    settings = make_settings(db_url, tmp_path, older_model)
    with TestClient(create_app(settings)) as client:
        yield load_shop(client, settings)


def test_older_model_is_ready_but_says_it_cannot_tell(
    older_shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    client = older_shop.client
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert ready.json()["unfamiliarity"] is False
    assert NOTE in ready.json()["unfamiliarity_note"]
    info = client.get("/v1/model", headers=older_shop.headers("reviewer"))
    assert info.status_code == 200, info.text
    body = info.json()
    assert body["model_version"] == "test-old" and body["unfamiliarity"] is False
    assert "no unfamiliarity parameters" in body["unfamiliarity_note"]
    assert body["card"].get("unfamiliarity") is None

    rid, token = older_shop.open_return()
    up = older_shop.upload(rid, token, jpeg(scene(1, "box")))  # the reference scene itself
    assert up.status_code == 200, up.text
    decision = up.json()["decision"]
    assert decision["outcome"] == "needs_review"
    assert [f["code"] for f in decision["flags"]] == ["model_cannot_tell"]
    assert decision["message"] == CANNOT_TELL_MESSAGE
    assert up.json()["photos"][0]["familiar"] is None

    dock = client.post(
        "/v1/dock/inspections",
        files=[("photos", ("d.jpg", jpeg(scene(12, "box")), "image/jpeg"))],
        data={"return_id": rid, "station_id": "dock-1"},
        headers={**older_shop.headers("dock"), "Idempotency-Key": "old-1"},
    )
    assert dock.status_code == 201, dock.text
    # the return still waits for its review: also not_pre_approved
    assert [f["code"] for f in dock.json()["flags"]] == ["model_cannot_tell", "not_pre_approved"]
    assert dock.json()["channel"] is None and dock.json()["familiar"] is None

    client.get("/readyz")
    records = caplog.get_records("setup") + caplog.get_records("call")  # start-up: setup
    warnings = [r for r in records if NOTE in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_a_model_with_the_score_says_so(sqlite_shop: Shop) -> None:
    ready = sqlite_shop.client.get("/readyz").json()
    assert ready["unfamiliarity"] is True and "green_excess" in ready["unfamiliarity_note"]
    info = sqlite_shop.client.get("/v1/model", headers=sqlite_shop.headers("reviewer")).json()
    assert info["unfamiliarity"] is True
    assert info["card"]["unfamiliarity"]["threshold"] == 0.4
