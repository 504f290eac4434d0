"""The API's flows over a real app, real database (SQLite and PostgreSQL) and real ONNX model."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from serving.app import create_app
from serving.services import shopper
from tests.photo_factory import gaussian_blur
from tests.shop import Shop, jpeg, make_settings, red, scene
from vision.model import SERVING_BATCH


def _decision(r: object) -> dict:  # type: ignore[type-arg]
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    return r.json()["decision"]  # type: ignore[attr-defined, no-any-return]


def test_shopper_flow_clean_photo_is_approved_and_stored(shop: Shop) -> None:
    rid, token = shop.open_return()
    r = shop.upload(rid, token, jpeg(scene(1, "box"), quality=85))
    body = r.json()
    decision = _decision(r)
    assert decision["outcome"] == "approved", decision
    assert decision["grade"]["label"] == "A_new"
    assert abs(sum(decision["grade"]["probs"].values()) - 1.0) < 1e-3
    assert set(decision["damage_probs"]) >= {"scratch", "crack"}
    assert decision["model_version"] == "test-0.1"
    assert decision["policy_version"].startswith("pol-")
    assert decision["message"]
    photo = body["photos"][0]
    assert photo["quality"]["passed"] is True and photo["quality"]["checks"]
    assert decision["heatmaps"] and all(
        h["url"].startswith("/v1/photos/") for h in decision["heatmaps"]
    )

    auth = {"Authorization": f"Bearer {token}"}
    got = shop.client.get(f"/v1/returns/{rid}", headers=auth)
    assert got.status_code == 200
    ret = got.json()
    assert ret["status"] == "approved" and ret["sku"] == "box-01"
    assert [d["outcome"] for d in ret["decisions"]] == ["approved"]
    assert ret["decision"]["decision_id"] == decision["decision_id"]
    assert [p["photo_id"] for p in ret["photos"]] == [photo["photo_id"]]

    img = shop.client.get(photo["url"], headers=auth)
    assert img.status_code == 200 and img.headers["content-type"] in ("image/jpeg", "image/png")
    stored = Image.open(io.BytesIO(img.content))
    assert stored.size[0] > 0 and not stored.getexif()  # metadata stripped
    heat = shop.client.get(decision["heatmaps"][0]["url"], headers=auth)
    assert heat.status_code == 200 and heat.headers["content-type"] == "image/png"
    assert heat.content.startswith(b"\x89PNG")


def test_blurred_photo_asks_for_retake_then_a_clean_retake_is_approved(shop: Shop) -> None:
    rid, token = shop.open_return()
    blurred = _decision(shop.upload(rid, token, jpeg(gaussian_blur(scene(5, "box"), 9))))
    assert blurred["outcome"] == "retake"
    assert "photo_quality" in {f["code"] for f in blurred["flags"]}
    clean = _decision(shop.upload(rid, token, jpeg(scene(1, "box"))))
    assert clean["outcome"] == "approved"
    ret = shop.client.get(f"/v1/returns/{rid}", headers={"Authorization": f"Bearer {token}"}).json()
    assert [d["outcome"] for d in ret["decisions"]] == ["retake", "approved"]
    assert len(ret["photos"]) == 2


def test_damaged_item_for_changed_mind_goes_to_review(shop: Shop) -> None:
    rid, token = shop.open_return(reason="changed_mind")
    decision = _decision(shop.upload(rid, token, jpeg(red(scene(1, "box")))))
    assert decision["outcome"] == "needs_review"
    assert decision["grade"]["label"] in ("D_fair", "E_damaged")
    assert "reason_condition_mismatch" in {f["code"] for f in decision["flags"]}


def test_wrong_item_photo_goes_to_review_with_the_flag(shop: Shop) -> None:
    rid, token = shop.open_return(sku="box-01")
    decision = _decision(shop.upload(rid, token, jpeg(shop.references["mug-01"])))
    assert decision["outcome"] == "needs_review"
    flags = {f["code"]: f for f in decision["flags"]}
    assert "wrong_item" in flags and flags["wrong_item"]["evidence"]


def test_a_requests_photos_run_one_per_model_call(sqlite_shop: Shop) -> None:
    """Serving runs the model one photo at a time (``vision.model.SERVING_BATCH``): a batch
    saves no CPU time and holds more ONNX Runtime memory per concurrent request."""
    svc = sqlite_shop.client.app.state.service  # type: ignore[attr-defined]
    model = svc.grader.model
    original, batches = model.predict, []

    def counting(batch: np.ndarray) -> object:
        batches.append(int(batch.shape[0]))
        return original(batch)

    model.predict = counting
    try:
        rid, token = sqlite_shop.open_return()
        photos = [jpeg(scene(1, "box"), quality=q) for q in (80, 88, 95)]
        assert sqlite_shop.upload(rid, token, *photos).status_code == 200
    finally:
        model.predict = original
    assert batches == [SERVING_BATCH] * 3


def test_inference_runs_off_the_event_loop(sqlite_shop: Shop) -> None:
    """While one upload is inside the service, the loop still answers /healthz."""
    client = sqlite_shop.client
    served, inside = threading.Event(), threading.Event()
    original = shopper.upload_photos  # the route calls the module's function at each request
    outcome: dict[str, object] = {}

    def blocking_upload(
        svc: object, return_id: str, uploads: list[bytes], **_options: object
    ) -> object:
        inside.set()
        outcome["loop_free"] = served.wait(timeout=30)  # a blocked loop never sets it
        return original(svc, return_id, uploads)  # type: ignore[arg-type]

    shopper.upload_photos = blocking_upload  # type: ignore[assignment]
    rid, token = sqlite_shop.open_return()
    worker = threading.Thread(
        target=lambda: outcome.setdefault(
            "upload", sqlite_shop.upload(rid, token, jpeg(scene(1, "box"))).status_code
        )
    )
    worker.start()
    try:
        assert inside.wait(timeout=30)
        assert client.get("/healthz").status_code == 200
        served.set()
    finally:
        served.set()
        worker.join(timeout=60)
        shopper.upload_photos = original
    assert outcome == {"loop_free": True, "upload": 200}


def test_dock_inspection_is_idempotent(shop: Shop) -> None:
    rid, token = shop.open_return()
    _decision(shop.upload(rid, token, jpeg(scene(1, "box"))))
    # scene 12 has the reference's layout (the tiny model's embedding): the right item
    photos = [("photos", ("dock.jpg", jpeg(scene(12, "box")), "image/jpeg"))]
    headers = {**shop.headers("dock"), "Idempotency-Key": "station-1:0001"}
    first = shop.client.post(
        "/v1/dock/inspections",
        files=photos,
        data={"return_id": rid, "station_id": "dock-1"},
        headers=headers,
    )
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["return_id"] == rid and body["status"] == "matched"
    assert body["grade"] and body["channel"] and body["tier"]
    assert body["expected_recovery"] is not None and body["replayed"] is False
    assert body["similarity"] > 0.9 and body["familiar"] is True and body["flags"] == []
    again = shop.client.post(
        "/v1/dock/inspections",
        files=photos,
        data={"return_id": rid, "station_id": "dock-1"},
        headers=headers,
    )
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["inspection_id"] == body["inspection_id"]
    other = [("photos", ("dock.jpg", jpeg(scene(11, "box")), "image/jpeg"))]
    conflict = shop.client.post(
        "/v1/dock/inspections",
        files=other,
        data={"return_id": rid, "idempotency_key": "station-1:0001"},
        headers=shop.headers("dock"),
    )
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"
    unmatched = shop.client.post(
        "/v1/dock/inspections",
        files=other,
        headers={**shop.headers("dock"), "Idempotency-Key": "k-2"},
    )
    assert unmatched.status_code == 201 and unmatched.json()["status"] == "unmatched"
    photo = shop.client.get(body["photo_urls"][0], headers=shop.headers("reviewer"))
    assert photo.status_code == 200


def test_review_queue_detail_and_verdict(shop: Shop) -> None:
    rid, token = shop.open_return(reason="changed_mind")
    assert (
        _decision(shop.upload(rid, token, jpeg(red(scene(1, "box")))))["outcome"] == "needs_review"
    )
    reviewer = shop.headers("reviewer")
    queue = shop.client.get("/v1/review/queue?sort=value", headers=reviewer)
    assert queue.status_code == 200
    items = {(i["subject_type"], i["subject_id"]): i for i in queue.json()}
    assert ("return", rid) in items
    detail = shop.client.get(items[("return", rid)]["detail_url"], headers=reviewer)
    assert detail.status_code == 200
    assert detail.json()["return_detail"]["return_id"] == rid
    assert detail.json()["audit"], "the audit history is part of the detail"
    verdict = shop.client.post(
        "/v1/review/verdicts",
        headers=reviewer,
        json={
            "subject_type": "return",
            "subject_id": rid,
            "verdict": "correct",
            "grade": "C_good",
            "damage": ["scratch"],
            "note": "light scuff only",
        },
    )
    assert verdict.status_code == 201, verdict.text
    stored = verdict.json()
    assert stored["reviewer"] == "test-reviewer" and stored["grade"] == "C_good"
    assert stored["damage"] == ["scratch"] and stored["created_at"]
    actions = [
        a.get("action")
        for a in shop.client.get(f"/v1/review/items/return/{rid}", headers=reviewer).json()["audit"]
    ]
    assert any("review" in str(a) for a in actions), actions


def test_admin_loads_catalog_and_orders_from_json_and_csv(shop: Shop) -> None:
    admin = shop.headers("admin")
    csv_text = "sku,category,name,price\nbook-01,book,Paperback,12.5\nbook-02,book,Atlas,30\n"
    r = shop.client.put(
        "/v1/admin/catalog", content=csv_text, headers={**admin, "Content-Type": "text/csv"}
    )
    assert r.status_code == 200 and r.json() == {"upserted": 2}
    orders = [
        {
            "order_id": "ORD-9",
            "customer_id": "C-9",
            "customer_email": "zoe@example.com",
            "sku": "book-02",
            "price": 30.0,
            "delivered_at": "2099-01-01T00:00:00",
        }
    ]
    r = shop.client.put("/v1/admin/orders", json=orders, headers=admin)
    assert r.status_code == 200 and r.json() == {"upserted": 1}
    r = shop.client.put(
        "/v1/admin/catalog/book-02/reference",
        content=jpeg(scene(4, "book")),
        headers={**admin, "Content-Type": "image/jpeg"},
    )
    assert r.status_code == 204, r.text
    created = shop.client.post(
        "/v1/returns",
        json={
            "order_id": "ORD-9",
            "sku": "book-02",
            "reason": "does_not_fit",
            "email": "ZOE@example.com ",
        },
    )
    assert created.status_code == 201, created.text


def test_meta_endpoints_and_metrics(shop: Shop) -> None:
    client = shop.client
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model_version"] == "test-0.1"
    model = client.get("/v1/model").json()
    assert model["model_version"] == "test-0.1" and "A_new" in model["grade_labels"]
    rid, token = shop.open_return()
    _decision(shop.upload(rid, token, jpeg(gaussian_blur(scene(5, "box"), 9))))
    text = client.get("/metrics").text
    assert 'returnlens_decisions_total{outcome="retake"} 1.0' in text
    assert 'returnlens_quality_failures_total{check="blur",source="shopper"}' in text
    assert 'route="/v1/returns/{return_id}/photos"' in text  # the template, not the id
    assert rid not in text
    assert "returnlens_model_info{sha256=" in text and 'version="test-0.1"' in text
    assert "returnlens_ready 1.0" in text


def test_readyz_is_503_until_the_lifespan_has_loaded_the_model(
    tmp_path: Path, tiny_model: Path
) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'r.db'}", tmp_path, tiny_model)
    app = create_app(settings)
    cold = TestClient(app)  # no context manager: the lifespan has not run
    r = cold.get("/readyz")
    assert r.status_code == 503 and r.json()["code"] == "not_ready"
    r = cold.post(
        "/v1/returns", json={"order_id": "x", "sku": "y", "reason": "defective", "email": "a@b.c"}
    )
    assert r.status_code == 503 and r.json()["code"] == "not_ready"
    with TestClient(app) as warm:
        assert warm.get("/readyz").status_code == 200
    assert app.state.ready is False  # shut down again


def test_openapi_documents_the_api(sqlite_shop: Shop) -> None:
    spec = sqlite_shop.client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/v1/returns",
        "/v1/returns/{return_id}/photos",
        "/v1/returns/{return_id}",
        "/v1/photos/{photo_id}/heatmap",
        "/v1/dock/inspections",
        "/v1/review/queue",
        "/v1/review/verdicts",
        "/v1/admin/catalog",
        "/v1/admin/orders",
        "/v1/admin/api-keys",
        "/v1/model",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
    upload = paths["/v1/returns/{return_id}/photos"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert upload["responses"]["413"]["content"]["application/json"]
    create = spec["components"]["schemas"]["CreateReturnIn"]
    assert set(create["properties"]["reason"]["enum"]) == {
        "changed_mind",
        "defective",
        "damaged_in_transit",
        "wrong_item",
        "not_as_described",
        "does_not_fit",
    }


def test_demo_seed_is_idempotent_and_its_data_works(sqlite_shop: Shop) -> None:
    from serving.demo import seed_demo

    svc, data_dir = sqlite_shop.client.app.state.service, sqlite_shop.settings.data_dir  # type: ignore
    first = seed_demo(svc, data_dir, skus_per_category=1)
    counts = sqlite_shop.counts()
    second = seed_demo(svc, data_dir, skus_per_category=1)
    assert second.keys == first.keys and first.new_keys and not second.new_keys
    assert second.history_returns == first.history_returns and len(first.history_returns) == 3
    after = sqlite_shop.counts()
    assert {k: after[k] for k in ("returns", "orders", "api_keys", "catalog_items")} == {
        k: counts[k] for k in ("returns", "orders", "api_keys", "catalog_items")
    }
    assert (data_dir / "demo.json").stat().st_mode & 0o077 == 0  # keys file is private
    c = sqlite_shop.client
    assert (
        c.get(
            "/v1/review/queue", headers={"Authorization": f"Bearer {first.keys['reviewer']}"}
        ).status_code
        == 200
    )
    order = next(o for o in first.orders if o.order_id == "ORD-1001")
    r = c.post(
        "/v1/returns",
        json={
            "order_id": order.order_id,
            "sku": order.sku,
            "reason": "changed_mind",
            "email": order.email,
        },
    )
    assert r.status_code == 201, r.text
    late = next(o for o in first.orders if o.order_id == "ORD-1004")
    r = c.post(
        "/v1/returns",
        json={
            "order_id": late.order_id,
            "sku": late.sku,
            "reason": "changed_mind",
            "email": late.email,
        },
    )
    assert r.status_code == 422 and r.json()["code"] == "outside_return_window"
    assert any("ORD-1001" in line for line in first.lines())
