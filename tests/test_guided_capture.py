"""Guided capture through the service and the HTTP API: a category asks for views, each
uploaded photo names the view it shows (the repeated form field ``views``), the photo row
keeps it, and the decision asks for the missing ones (``missing_views``) until every view
has a usable photo. Replay and policy simulation read the views back from the photo rows.

Real parts: the app's real lifespan over SQLite and PostgreSQL (``db_url``), the tiny
ONNX model, real JPEG bytes; the policy is the shipped one with views added to ``box``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from serving.domain_errors import Invalid
from serving.policy import default_policy_path, policy_from_dict
from serving.services import replay, shopper
from serving.services.decide import policy_for_model
from serving.services.inputs import CreateReturnRequest
from serving.services.service import ReturnLensService
from serving.storage.tables import Decision, Photo
from tests.photo_factory import gaussian_blur
from tests.service_data import NOW, blurry, clean
from tests.shop import EMAIL, Shop, jpeg, load_shop, make_settings, scene

VIEWS = [
    {"name": "front", "prompt": "The front of the box", "outline": "box"},
    {"name": "label_side", "prompt": "The side with the label", "outline": "generic"},
]


def policy_data(category: str) -> dict[str, Any]:
    data = yaml.safe_load(default_policy_path().read_text(encoding="utf-8"))
    data["categories"][category] = {**(data["categories"].get(category) or {}), "views": VIEWS}
    return data


@pytest.fixture
def guided_shop(db_url: str, tmp_path: Path, tiny_model: Path) -> Iterator[Shop]:
    from serving.app import create_app

    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy_data("box")), encoding="utf-8")
    settings = make_settings(db_url, tmp_path, tiny_model, policy_path=path)
    with TestClient(create_app(settings)) as client:
        yield load_shop(client, settings)


def upload(shop: Shop, rid: str, token: str, photos: list[bytes], views: list[str]) -> Any:
    return shop.client.post(
        f"/v1/returns/{rid}/photos",
        files=[("photos", (f"{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos)],
        data={"views": views},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_missing_view_asks_for_it_then_the_retake_completes_the_views(guided_shop: Shop) -> None:
    shop = guided_shop
    created = shop.client.post(
        "/v1/returns",
        json={"order_id": "ORD-1", "sku": "box-01", "reason": "changed_mind", "email": EMAIL},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert [v["name"] for v in body["required_views"]] == ["front", "label_side"]
    rid, token = body["return_id"], body["token"]
    auth = {"Authorization": f"Bearer {token}"}
    got = shop.client.get(f"/v1/returns/{rid}", headers=auth).json()
    assert got["required_views"] == VIEWS

    first = upload(shop, rid, token, [jpeg(scene(1, "box"), quality=85)], ["front"])
    assert first.status_code == 200, first.text
    decision = first.json()["decision"]
    assert decision["outcome"] == "retake", decision
    flag = next(f for f in decision["flags"] if f["code"] == "missing_views")
    assert flag["effect"] == "retake"
    assert flag["evidence"]["missing"] == ["label_side"]
    assert "The side with the label" in flag["message"]
    assert "side with the label" in decision["message"]
    assert first.json()["photos"][0]["view"] == "front"

    second = upload(shop, rid, token, [jpeg(scene(1, "box"), quality=80)], ["label_side"])
    assert second.status_code == 200, second.text
    done = second.json()["decision"]
    assert done["outcome"] == "approved", done
    assert "missing_views" not in {f["code"] for f in done["flags"]}
    ret = shop.client.get(f"/v1/returns/{rid}", headers=auth).json()
    assert [p["view"] for p in ret["photos"]] == ["front", "label_side"]
    assert [d["outcome"] for d in ret["decisions"]] == ["retake", "approved"]


def test_a_blurry_photo_of_a_view_leaves_it_missing(guided_shop: Shop) -> None:
    rid, token = guided_shop.open_return()
    photos = [jpeg(scene(1, "box"), quality=85), jpeg(gaussian_blur(scene(5, "box"), 9))]
    r = upload(guided_shop, rid, token, photos, ["front", "label_side"])
    assert r.status_code == 200, r.text
    decision = r.json()["decision"]
    assert decision["outcome"] == "retake"
    codes = {f["code"]: f for f in decision["flags"]}
    assert codes["missing_views"]["evidence"]["missing"] == ["label_side"]
    assert codes["photo_quality"]["effect"] == "note"


def test_unknown_or_misaligned_views_are_refused_before_anything_is_stored(
    guided_shop: Shop,
) -> None:
    shop = guided_shop
    rid, token = shop.open_return()
    before = shop.counts()
    r = upload(shop, rid, token, [jpeg(scene(1, "box"))], ["top"])
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "unknown_view"
    assert r.json()["details"]["allowed"] == ["front", "label_side"]
    assert "front, label_side" in r.json()["message"]
    two = upload(shop, rid, token, [jpeg(scene(1, "box")), jpeg(scene(2, "box"))], ["front"])
    assert two.status_code == 422 and two.json()["code"] == "views_mismatch", two.text
    assert shop.counts()["photos"] == before["photos"]


def test_without_views_a_category_with_views_still_decides_and_names_them(
    guided_shop: Shop,
) -> None:
    """An API client that sends no views gets the retake that lists them all."""
    rid, token = guided_shop.open_return()
    r = guided_shop.upload(rid, token, jpeg(scene(1, "box"), quality=85))
    assert r.status_code == 200, r.text
    flag = next(f for f in r.json()["decision"]["flags"] if f["code"] == "missing_views")
    assert flag["evidence"]["missing"] == ["front", "label_side"]
    assert r.json()["photos"][0]["view"] is None


# --------------------------------------------------------------------------- service
def use_views(svc: ReturnLensService, category: str) -> None:
    svc.policy = policy_for_model(policy_from_dict(policy_data(category)), svc.grader.card)


def new_return(svc: ReturnLensService) -> str:
    req = CreateReturnRequest(order_id="o-1", sku="mug-01", reason="changed_mind")
    created = shopper.create_return(svc, req)
    assert [v.name for v in created.required_views] == ["front", "label_side"]
    assert shopper.get_return(svc, created.return_id).required_views == created.required_views
    return created.return_id


def test_views_replay_and_simulate_from_the_photo_rows(svc: ReturnLensService) -> None:
    use_views(svc, "mug")
    rid = new_return(svc)
    first = shopper.upload_photos(svc, rid, [clean(seed=0)], views=["front"])
    assert first.decision.outcome == "retake"
    second = shopper.upload_photos(
        svc, rid, [clean(seed=1), blurry(seed=2)], views=["label_side", ""]
    )
    assert second.decision.outcome == "approved", second.decision.flags
    with svc.db.read() as s:
        views = {p.id: p.view for p in s.query(Photo).filter(Photo.return_id == rid)}
        rows = s.query(Decision).filter(Decision.return_id == rid).order_by(Decision.sequence)
        ids = [d.id for d in rows]
    assert sorted(views.values(), key=lambda v: v or "~") == ["front", "label_side", None]
    for decision_id in ids:
        result = replay.replay_decision(svc, decision_id)
        assert result.reproduced, [d.line() for d in result.differences]
    # The same history under a policy whose mug asks for a view nobody photographed.
    data = policy_data("mug")
    data["categories"]["mug"]["views"] = [*VIEWS, {"name": "base", "prompt": "The base"}]
    stricter = policy_for_model(policy_from_dict(data), svc.grader.card)
    sim = replay.simulate_policy(svc.db, stricter, since=NOW)
    assert dict(sim.transitions) == {("approved", "retake"): 1}
    same = replay.simulate_policy(svc.db, svc.policy, since=NOW)
    assert same.changed == ()


def test_service_refuses_an_unknown_view_before_decoding(svc: ReturnLensService) -> None:
    use_views(svc, "mug")
    rid = new_return(svc)
    with pytest.raises(Invalid) as info:
        shopper.upload_photos(svc, rid, [b"not even a photo"], views=["side"])
    assert info.value.code == "unknown_view"
    assert info.value.details["allowed"] == ["front", "label_side"]
    # A category without views names none: any view is unknown there.
    use_views(svc, "package")
    with pytest.raises(Invalid) as none:
        shopper.upload_photos(svc, rid, [clean(seed=0)], views=["front"])
    assert none.value.code == "unknown_view" and none.value.details["allowed"] == []
    with svc.db.read() as s:
        assert s.query(Photo).filter(Photo.return_id == rid).count() == 0
