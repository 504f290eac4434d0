"""Access: shopper tokens open one return, API keys by role and stored hashed, rate limits."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from serving.app import create_app
from serving.ratelimit import rule
from tests.ratelimits import mid_window_rate
from tests.shop import ADMIN_KEY, Shop, jpeg, make_settings, scene

STAFF_CALLS: tuple[tuple[str, str, Any], ...] = (
    ("get", "/v1/review/queue", None),
    ("get", "/v1/review/items/return/{rid}", None),
    (
        "post",
        "/v1/review/verdicts",
        {"subject_type": "return", "subject_id": "{rid}", "verdict": "approve"},
    ),
    ("put", "/v1/admin/orders", []),
    ("put", "/v1/admin/catalog", []),
    ("post", "/v1/admin/api-keys", {"name": "evil", "role": "admin"}),
    ("post", "/v1/dock/inspections", None),
)


def _call(
    client: TestClient, method: str, path: str, body: object, headers: dict[str, str]
) -> object:
    if method == "get":
        return client.get(path, headers=headers)
    if path.endswith("/inspections"):
        return client.post(
            path,
            headers={**headers, "Idempotency-Key": "k1"},
            files=[("photos", ("a.jpg", jpeg(scene(1)), "image/jpeg"))],
        )
    return client.request(method.upper(), path, json=body, headers=headers)


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_one_shopper_cannot_read_or_write_another_shoppers_return(shop: Shop) -> None:
    rid_a, token_a = shop.open_return("ORD-1", email="ada@example.com")
    rid_b, token_b = shop.open_return("ORD-2", email="bob@example.com")
    up = shop.upload(rid_b, token_b, jpeg(scene(1)))
    assert up.status_code == 200
    photo_b = up.json()["photos"][0]
    before = shop.counts()
    # A's token on B's return: read, upload, photo, heatmap.
    assert shop.client.get(f"/v1/returns/{rid_b}", headers=_bearer(token_a)).status_code == 403
    r = shop.upload(rid_b, token_a, jpeg(scene(3)))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert shop.client.get(photo_b["url"], headers=_bearer(token_a)).status_code == 403
    assert (
        shop.client.get(photo_b["heatmaps"][0]["url"], headers=_bearer(token_a)).status_code == 403
    )
    # No token, a made-up token, an unknown return id.
    assert shop.client.get(f"/v1/returns/{rid_b}").status_code == 401
    assert (
        shop.client.get(f"/v1/returns/{rid_b}", headers=_bearer("not-a-token")).status_code == 403
    )
    assert (
        shop.client.get("/v1/returns/ret_doesnotexist", headers=_bearer(token_a)).status_code == 403
    )
    assert shop.counts() == before  # the refused upload stored nothing
    # Each token still opens its own return.
    assert shop.client.get(f"/v1/returns/{rid_a}", headers=_bearer(token_a)).status_code == 200
    assert shop.client.get(photo_b["url"], headers=_bearer(token_b)).status_code == 200


def test_a_shopper_token_reaches_no_dock_review_or_admin_endpoint(sqlite_shop: Shop) -> None:
    rid, token = sqlite_shop.open_return()
    before = sqlite_shop.counts()
    for method, path, body in STAFF_CALLS:
        for headers in (_bearer(token), {"X-API-Key": token}):
            r = _call(
                sqlite_shop.client,
                method,
                path.replace("{rid}", rid),
                body
                if not isinstance(body, dict)
                else {
                    k: (v.replace("{rid}", rid) if isinstance(v, str) else v)
                    for k, v in body.items()
                },
                headers,
            )
            assert r.status_code == 401, (path, r.status_code, r.text)  # type: ignore
            assert r.json()["code"] == "unauthorized"  # type: ignore[attr-defined]
    assert sqlite_shop.counts() == before


def test_roles_are_enforced(sqlite_shop: Shop) -> None:
    s, rid = sqlite_shop, sqlite_shop.open_return()[0]
    dock, reviewer = s.headers("dock"), s.headers("reviewer")
    assert s.client.get("/v1/review/queue", headers=dock).status_code == 403
    assert (
        s.client.post(
            "/v1/admin/api-keys", headers=reviewer, json={"name": "x", "role": "admin"}
        ).status_code
        == 403
    )
    assert _call(s.client, "post", "/v1/dock/inspections", None, reviewer).status_code == 403  # type: ignore[attr-defined]
    assert s.client.get(f"/v1/returns/{rid}", headers=dock).status_code == 403
    assert s.client.get(f"/v1/returns/{rid}", headers=reviewer).status_code == 200
    assert s.client.get("/v1/review/queue", headers=s.headers("admin")).status_code == 200
    # Reviewers read returns but do not upload as the shopper.
    assert s.upload(rid, s.keys["reviewer"], jpeg(scene(1))).status_code == 403
    assert s.client.get("/v1/review/queue", headers={"X-API-Key": "rlk_made_up"}).status_code == 401


def test_api_keys_and_shopper_tokens_are_stored_hashed(shop: Shop) -> None:
    rid, token = shop.open_return()
    key = shop.keys["reviewer"]
    engine = create_engine(shop.settings.database_url)
    try:
        with engine.connect() as conn:
            keys = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM api_keys"))]
            ret = dict(
                conn.execute(text("SELECT * FROM returns WHERE id = :i"), {"i": rid}).one()._mapping
            )
    finally:
        engine.dispose()
    row = next(k for k in keys if k["name"] == "test-reviewer")
    assert row["role"] == "reviewer"
    for stored in keys:
        assert all(key not in str(v) for v in stored.values())
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert all(token not in str(v) for v in ret.values())
    assert ret["shopper_token_hash"] == hashlib.sha256(token.encode()).hexdigest()


def test_rate_limit_per_key_and_per_ip_answer_429(tmp_path: Path, tiny_model: Path) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'rl.db'}",
        tmp_path,
        tiny_model,
        rate_limit_per_key=mid_window_rate(3),
        rate_limit_per_key_burst=3,
        rate_limit_per_ip=mid_window_rate(8),
        rate_limit_per_ip_burst=8,
    )
    with TestClient(create_app(settings)) as client:
        admin = {"X-API-Key": ADMIN_KEY}
        codes = [client.get("/v1/review/queue", headers=admin).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = client.get("/v1/review/queue", headers=admin)
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1 and r.json()["details"]["scope"] == "key"
        # Another credential has its own bucket, but the address's bucket runs dry too.
        other = [client.get("/v1/model").status_code for _ in range(4)]
        assert other[-1] == 429 and client.get("/v1/model").json()["details"]["scope"] == "ip"
        assert client.get("/healthz").status_code == 200  # probes are never limited
        assert 'returnlens_rate_limited_total{scope="key"}' in client.get("/metrics").text


def test_rate_and_burst_become_one_sliding_window() -> None:
    """``rate`` per minute with bursts of ``burst``: ``burst`` per ``burst/rate`` minutes
    (the defaults: 120 per 12 s per address, 60 per 12 s per credential)."""
    per_ip, per_key = rule(600, 120), rule(300, 60)
    assert per_ip is not None and (per_ip.amount, per_ip.get_expiry()) == (120, 12)
    assert per_key is not None and (per_key.amount, per_key.get_expiry()) == (60, 12)
    slow = rule(1, 3)
    assert slow is not None and (slow.amount, slow.get_expiry()) == (3, 180)
    assert rule(0, 5) is None  # 0 turns the rule off
    with pytest.raises(ValueError):
        rule(10, 0)


def test_bootstrap_admin_key_and_unknown_keys(sqlite_shop: Shop) -> None:
    c = sqlite_shop.client
    assert c.get("/v1/review/queue", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
    r = c.get("/v1/review/queue", headers={"X-API-Key": ADMIN_KEY + "x"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert c.get("/v1/review/queue").json()["code"] == "unauthorized"
    key = sqlite_shop.keys["reviewer"]
    assert c.get("/v1/review/queue", headers={"X-API-Key": key}).status_code == 200
    assert c.get("/v1/review/queue", headers=_bearer(key)).status_code == 200


def test_admin_creates_lists_and_revokes_a_key(sqlite_shop: Shop) -> None:
    """The README's key lifecycle: bootstrap admin -> new key works -> listed without
    the secret -> revoked -> refused at once; revoking a missing name is a 404."""
    s = sqlite_shop
    admin = {"X-API-Key": ADMIN_KEY}
    made = s.client.post(
        "/v1/admin/api-keys", headers=admin, json={"name": "dock-7", "role": "dock"}
    )
    assert made.status_code == 201
    key = made.json()["key"]
    dock = {"Authorization": f"Bearer {key}"}
    assert s.client.get("/v1/review/queue", headers=dock).status_code == 403  # a dock key
    listed = s.client.get("/v1/admin/api-keys", headers=admin)
    assert listed.status_code == 200
    row = next(k for k in listed.json() if k["name"] == "dock-7")
    assert row["role"] == "dock" and row["revoked_at"] is None
    assert key.startswith(row["prefix"]) and key not in listed.text
    assert s.client.get("/v1/admin/api-keys", headers=dock).status_code == 403
    assert s.client.delete("/v1/admin/api-keys/dock-7", headers=dock).status_code == 403

    assert s.client.delete("/v1/admin/api-keys/dock-7", headers=admin).status_code == 204
    refused = s.client.get("/v1/admin/api-keys", headers=dock)
    assert refused.status_code == 401
    after = next(
        k for k in s.client.get("/v1/admin/api-keys", headers=admin).json() if k["name"] == "dock-7"
    )
    assert after["revoked_at"] is not None
    missing = s.client.delete("/v1/admin/api-keys/nobody", headers=admin)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
