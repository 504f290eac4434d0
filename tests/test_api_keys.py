"""Staff keys: created, listed (prefix, role, created, last used) and revoked through the
API and the CLI; a revocation holds on the next request of every app on the database;
a dock key reads only dock-related photos; demo keys never reach the server's output.

Revocation is checked with two app instances (two "workers") over one database, on
SQLite and PostgreSQL: nothing caches a key in a process. The CLI runs in-process
through ``returnlens.cli.main``, the console script's entry point. The demo test starts
``returnlens serve --seed-demo`` as a subprocess and reads everything it wrote.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from returnlens.cli import main
from serving.app import create_app
from serving.services import keys
from serving.storage.db import Database
from tests import live
from tests.shop import ADMIN_KEY, Shop, jpeg, make_settings, scene

ADMIN = {"X-API-Key": ADMIN_KEY}


@pytest.fixture
def two_apps(db_url: str, tmp_path: Path, tiny_model: Path) -> Iterator[list[TestClient]]:
    """Two app instances (as two workers or replicas) over one database."""
    with ExitStack() as stack:
        clients = [
            stack.enter_context(
                TestClient(create_app(make_settings(db_url, tmp_path / name, tiny_model)))
            )
            for name in ("a", "b")
        ]
        yield clients


def test_revocation_holds_on_the_next_request_of_every_app(two_apps: list[TestClient]) -> None:
    a, b = two_apps
    made = a.post("/v1/admin/api-keys", headers=ADMIN, json={"name": "rev-1", "role": "reviewer"})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    auth = {"Authorization": f"Bearer {key}"}
    assert b.get("/v1/review/queue", headers=auth).status_code == 200
    assert a.get("/v1/review/queue", headers=auth).status_code == 200
    listed = a.get("/v1/admin/api-keys", headers=ADMIN).json()
    row = next(k for k in listed if k["name"] == "rev-1")
    assert row["role"] == "reviewer" and key.startswith(row["prefix"])
    assert row["created_at"] and row["last_used_at"] and row["revoked_at"] is None
    assert key not in json.dumps(listed)
    assert a.delete("/v1/admin/api-keys/rev-1", headers=ADMIN).status_code == 204
    refused = b.get("/v1/review/queue", headers=auth)  # the other app, its next request
    assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
    assert a.get("/v1/review/queue", headers=auth).status_code == 401
    row = next(k for k in b.get("/v1/admin/api-keys", headers=ADMIN).json() if k["name"] == "rev-1")
    assert row["revoked_at"] is not None


def test_last_used_is_written_at_most_once_a_minute(db_url: str) -> None:
    db = Database(db_url)
    try:
        t0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
        key = keys.create_key(db, keys.key_request("dock-lu", "dock"), now=t0, actor="test")
        used = lambda: next(k for k in keys.list_keys(db) if k.name == "dock-lu").last_used_at  # noqa: E731
        assert used() is None
        assert keys.authenticate(db, key, now=t0 + timedelta(seconds=5)) == ("dock-lu", "dock")
        assert used() == t0 + timedelta(seconds=5)
        keys.authenticate(db, key, now=t0 + timedelta(seconds=50))
        assert used() == t0 + timedelta(seconds=5)  # within the minute: no write
        keys.authenticate(db, key, now=t0 + timedelta(seconds=70))
        assert used() == t0 + timedelta(seconds=70)
        assert keys.authenticate(db, key + "x", now=t0) is None
    finally:
        db.dispose()


def test_cli_creates_lists_and_revokes_keys(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--database-url", db_url]
    assert main(["keys", "create", "dock-cli", "--role", "dock", *where]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert key.startswith("rlk_") and "only time" in out.err
    db = Database(db_url)
    try:
        assert keys.authenticate(db, key, now=datetime.now(UTC)) == ("dock-cli", "dock")
    finally:
        db.dispose()
    assert main(["keys", "list", *where]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == [
        "NAME",
        "ROLE",
        "PREFIX",
        "CREATED",
        "LAST",
        "USED",
        "REVOKED",
    ]
    line = next(x for x in table.splitlines() if x.startswith("dock-cli"))
    assert " dock " in line and key[:10] in line and key not in table
    assert main(["keys", "list", "--json", *where]) == 0
    rows = json.loads(capsys.readouterr().out)
    row = next(r for r in rows if r["name"] == "dock-cli")
    assert row["last_used_at"] is not None and row["revoked_at"] is None
    assert main(["keys", "revoke", "dock-cli", *where]) == 0
    capsys.readouterr()
    db = Database(db_url)
    try:
        assert keys.authenticate(db, key, now=datetime.now(UTC)) is None
    finally:
        db.dispose()
    assert main(["keys", "list", "--json", *where]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert next(r for r in rows if r["name"] == "dock-cli")["revoked_at"] is not None
    # Refusals are one sentence on stderr, exit status 2, never a traceback.
    for argv, code in (
        (["keys", "create", "bad name!", "--role", "dock"], "invalid_field"),
        (["keys", "create", "dock-cli", "--role", "dock"], "name_taken"),
        (["keys", "revoke", "nobody"], "not_found"),
    ):
        assert main([*argv, *where]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and err.endswith(f"[{code}]"), err
        assert len(err.splitlines()) == 1


def _photo(shop: Shop, order: str, email: str, seed: int) -> tuple[str, dict[str, Any]]:
    rid, token = shop.open_return(order, email=email)
    up = shop.upload(rid, token, jpeg(scene(seed)))
    assert up.status_code == 200, up.text
    return rid, up.json()["photos"][0]


def test_a_dock_key_reads_only_dock_photos(shop: Shop) -> None:
    rid_a, photo_a = _photo(shop, "ORD-1", "ada@example.com", 1)
    _, photo_b = _photo(shop, "ORD-2", "bob@example.com", 2)
    dock, reviewer, admin = (shop.headers(r) for r in ("dock", "reviewer", "admin"))
    get = shop.client.get
    for photo in (photo_a, photo_b):  # no dock has seen these returns yet
        assert get(photo["url"], headers=dock).status_code == 403
        assert get(photo["heatmaps"][0]["url"], headers=dock).status_code == 403
        assert get(photo["url"], headers=reviewer).status_code == 200
        assert get(photo["url"], headers=admin).status_code == 200
    unknown = get("/v1/photos/pho_000000000000000000000000", headers=dock)
    assert unknown.status_code == 403  # like a foreign photo: no probing for ids
    inspected = shop.client.post(
        "/v1/dock/inspections",
        files=[("photos", ("d.jpg", jpeg(scene(1)), "image/jpeg"))],
        data={"return_id": rid_a, "idempotency_key": "dock-scope-1"},
        headers=dock,
    )
    assert inspected.status_code == 201, inspected.text
    assert inspected.json()["status"] == "matched"
    assert get(inspected.json()["photo_urls"][0], headers=dock).status_code == 200
    assert get(photo_a["url"], headers=dock).status_code == 200  # the return it inspects
    assert get(photo_b["url"], headers=dock).status_code == 403  # still not this one


def test_demo_keys_go_to_a_private_file_never_to_the_log(tmp_path: Path, tiny_model: Path) -> None:
    root = tmp_path / "demo"
    root.mkdir()
    with live.serve_demo(root, tiny_model, admin_key=ADMIN_KEY, timeout_s=180) as base:
        state = root / "demo.json"
        assert stat.S_IMODE(state.stat().st_mode) == 0o600
        demo_keys = json.loads(state.read_text())["keys"]
        assert set(demo_keys) == {"admin", "dock", "reviewer"}
        import httpx

        with httpx.Client(base_url=base, timeout=30) as client:
            for key in demo_keys.values():  # used in both header forms: still not logged
                assert client.get("/v1/model", headers={"X-API-Key": key}).status_code == 200
                auth = {"Authorization": f"Bearer {key}"}
                assert client.get("/v1/model", headers=auth).status_code == 200
            reviewer = {"Authorization": f"Bearer {demo_keys['reviewer']}"}
            assert client.get("/v1/review/queue", headers=reviewer).status_code == 200
    log = (root / "server.log").read_text(errors="replace")
    assert str(state) in log, log[-2000:]  # the path is printed ...
    for key in demo_keys.values():
        assert key not in log and key[:12] not in log  # ... never a key
