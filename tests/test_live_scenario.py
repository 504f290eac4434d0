"""The shopper scenario against a live ``returnlens serve`` (uvicorn) over real HTTP.

The server is the README's main command in a subprocess: the SHIPPED default model,
SQLite in a temporary folder, the demo data seeded. The photos come from the synthetic
generator: a clean photo of the ordered SKU, the same kind of photo heavily blurred, a
damaged item, and a photo of an item from another category.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from serving.models import default_model_path
from tests import live

pytestmark = pytest.mark.slow
ADMIN_KEY = "live-test-admin-key-0123456789abcdef"
READY_TIMEOUT_S = 180.0
SEED = 7


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = default_model_path()
    if not model.is_file():
        pytest.skip(f"the shipped default model is missing: {model} (make default-model)")
    root = tmp_path_factory.mktemp("live")
    with live.serve_demo(
        root,
        model,
        admin_key=ADMIN_KEY,
        timeout_s=READY_TIMEOUT_S,
        extra_env={"RETURNLENS_DEMO_SEED": str(SEED)},
    ) as base:
        yield base


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
    )
    assert ok
    return buf.tobytes()


def _photos() -> tuple[Any, dict[str, bytes]]:
    """The ordered SKU and four photos of returned items (from the synthetic generator)."""
    from vision.synth import catalog_skus, render_photo, sample_state

    skus = catalog_skus(SEED, 2)
    ordered = next(s for s in skus if s.category == "mug")
    other = next(s for s in skus if s.category == "shoe")

    def photo(sku: Any, grade: str, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        state = sample_state(sku, grade, rng)
        rgb, _ = render_photo(sku, state, rng, 768, background="plain")
        return rgb

    clean = photo(ordered, "A_new", 101)
    return ordered, {
        "clean": _jpeg(clean),
        "blurred": _jpeg(cv2.GaussianBlur(photo(ordered, "A_new", 102), (0, 0), 9)),
        "damaged": _jpeg(photo(ordered, "E_damaged", 103)),
        "wrong_sku": _jpeg(photo(other, "A_new", 104)),
    }


def _open_return(
    client: httpx.Client, order_id: str, sku: str, email: str, reason: str
) -> tuple[str, dict[str, str]]:
    r = client.post(
        "/v1/returns", json={"order_id": order_id, "sku": sku, "reason": reason, "email": email}
    )
    assert r.status_code == 201, r.text
    return r.json()["return_id"], {"Authorization": f"Bearer {r.json()['token']}"}


def _upload(client: httpx.Client, rid: str, auth: dict[str, str], data: bytes) -> Any:
    r = client.post(
        f"/v1/returns/{rid}/photos",
        headers=auth,
        files=[("photos", ("photo.jpg", data, "image/jpeg"))],
    )
    assert r.status_code == 200, r.text
    return r.json()["decision"]


def test_shopper_scenario_over_real_http(server: str) -> None:
    sku, photos = _photos()
    when = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    cases = ("clean", "blurred", "damaged", "wrong_sku")
    with httpx.Client(base_url=server, timeout=60) as client:
        # One order (and customer) per case, so no case sees another's history.
        orders = [
            {
                "order_id": f"LIVE-{i}",
                "customer_id": f"LC-{i}",
                "customer_email": f"live{i}@example.com",
                "sku": sku.sku,
                "price": sku.price,
                "delivered_at": when,
            }
            for i in range(len(cases))
        ]
        r = client.put("/v1/admin/orders", json=orders, headers={"X-API-Key": ADMIN_KEY})
        assert r.status_code == 200, r.text
        reasons = {
            "clean": "changed_mind",
            "blurred": "changed_mind",
            "damaged": "changed_mind",
            "wrong_sku": "does_not_fit",
        }
        got = {}
        for i, case in enumerate(cases):
            rid, auth = _open_return(
                client, f"LIVE-{i}", sku.sku, f"live{i}@example.com", reasons[case]
            )
            got[case] = _upload(client, rid, auth, photos[case])
            if case == "clean":
                ret = client.get(f"/v1/returns/{rid}", headers=auth).json()
                assert ret["status"] == "approved"
        flags = {c: {f["code"] for f in d["flags"]} for c, d in got.items()}
        assert got["clean"]["outcome"] == "approved", got["clean"]
        assert got["blurred"]["outcome"] == "retake", got["blurred"]
        assert "photo_quality" in flags["blurred"]
        assert got["damaged"]["outcome"] == "needs_review", got["damaged"]
        assert got["damaged"]["grade"]["label"] in ("D_fair", "E_damaged")
        assert got["wrong_sku"]["outcome"] == "needs_review", got["wrong_sku"]
        assert "wrong_item" in flags["wrong_sku"]
        metrics = client.get("/metrics").text
        assert 'returnlens_decisions_total{outcome="approved"}' in metrics
