"""The shopper's return label (``serving.services.labels``, ``/v1/returns/{id}/label``):
issued once on approval, drawn as PNG and PDF, and its QR code read back by the dock
station's reader (``serving.dock.identify.QrReader``: OpenCV's two detectors) to the id."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from serving.dock.identify import QrReader
from tests.shop import Shop, jpeg, red, scene


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def approved(shop: Shop, seed: int = 1, **order: str) -> tuple[str, str]:
    rid, token = shop.open_return(**order)
    r = shop.upload(rid, token, jpeg(scene(seed, "box")))
    assert r.status_code == 200 and r.json()["decision"]["outcome"] == "approved", r.text
    return rid, token


def test_an_approved_return_gets_a_label_the_dock_can_read(shop: Shop) -> None:
    rid, token = approved(shop)
    issued = shop.client.post(f"/v1/returns/{rid}/label", headers=bearer(token))
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert body["status"] == "label_issued"
    png = shop.client.get(body["png_url"], headers=bearer(token))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    assert image.size == (812, 1218)  # 4 x 6 inches at 203 dpi
    bgr = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)
    assert QrReader().read(bgr) == rid
    pdf = shop.client.get(body["pdf_url"], headers=bearer(token))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and b"%%EOF" in pdf.content[-64:]
    again = shop.client.post(f"/v1/returns/{rid}/label", headers=bearer(token))
    assert again.status_code == 200 and again.json()["status"] == "label_issued"
    view = shop.client.get(f"/v1/returns/{rid}", headers=bearer(token)).json()
    assert [e["status"] for e in view["timeline"]].count("label_issued") == 1  # issued once


def test_no_label_before_approval_and_none_for_another_shopper(shop: Shop) -> None:
    # The other shopper's return first: the test renders of seeds 1 and 12 are one
    # template (the same box at the same place; only hue and label text differ), which
    # the reused-photo check's 96 px grey comparison cannot tell apart.
    other, other_token = approved(shop, 12, order_id="ORD-2", email="bob@example.com")
    rid, token = shop.open_return()
    assert shop.upload(rid, token, jpeg(red(scene(1, "box")))).json()["decision"]["outcome"] == (
        "needs_review"
    )
    for method, path in (("POST", "label"), ("GET", "label.png"), ("GET", "label.pdf")):
        r = shop.client.request(method, f"/v1/returns/{rid}/{path}", headers=bearer(token))
        assert r.status_code == 409 and r.json()["code"] == "no_label", (path, r.text)
        assert "needs_review" in r.json()["message"]
    r = shop.client.get(f"/v1/returns/{other}/label.png", headers=bearer(token))
    assert r.status_code == 403
    r = shop.client.get(f"/v1/returns/{other}/label.gif", headers=bearer(other_token))
    assert r.status_code == 422
    assert shop.client.get(f"/v1/returns/{other}/label.png").status_code == 401
