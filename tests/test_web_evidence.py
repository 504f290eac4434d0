"""Flag evidence at a glance in the reviewer console, in real Chromium on a live server.

A second return reuses the first return's photo (re-saved at another JPEG quality). In
the console its ``reused_photo`` flag shows the measure against its threshold, the two
photos side by side (this return's and the earlier one, both fetched with the reviewer's
key), and a button that opens the earlier return. A third return uploads the catalog's
own reference photo: its ``catalog_photo`` flag shows the SKU's reference beside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from tests.browser import (
    DESKTOP,
    LiveServer,
    Order,
    PhotoKit,
    chromium,
    jpeg,
    live_server,
    open_return,
    photo_kit,
    screenshot,
    seed_shop,
    staff_key,
    upload,
)
from tests.requires import require_chromium

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def reused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_chromium()
    root = tmp_path_factory.mktemp("live-evidence")
    kit: PhotoKit = photo_kit(root)
    with live_server(root / "server", kit.model) as server:
        first, second, third = (
            Order(f"EV-{i}", f"ev{i}@example.com", kit.approve_sku) for i in (1, 2, 3)
        )
        seed_shop(server, kit.catalog, [first, second, third])
        first_id, token = open_return(server, first, "changed_mind")
        upload(server, first_id, token, jpeg(kit.clean))
        second_id, token = open_return(server, second, "changed_mind")
        decision = upload(server, second_id, token, jpeg(kit.clean, quality=75))["decision"]
        flag = next(f for f in decision["flags"] if f["code"] == "reused_photo")
        reference = next(c["reference"] for c in kit.catalog if c["sku"] == kit.approve_sku)
        third_id, token = open_return(server, third, "changed_mind")
        # The reference scene at a size the quality gate accepts (it is 384 px square).
        scene = cv2.imdecode(np.frombuffer(reference, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        big = cv2.resize(scene, (800, 800), interpolation=cv2.INTER_CUBIC)
        decision = upload(server, third_id, token, jpeg(big))["decision"]
        assert decision["outcome"] == "needs_review", decision
        catalog = next(f for f in decision["flags"] if f["code"] == "catalog_photo")
        yield {"server": server, "first": first_id, "second": second_id, "flag": flag,
               "third": third_id, "catalog_flag": catalog, "sku": kit.approve_sku}  # fmt: skip


def _open_flag(page: Any, server: LiveServer, return_id: str, code: str) -> Any:
    """Sign in as the reviewer, open ``return_id`` and wait until ``code``'s evidence
    shows both of its photos (fetched with the reviewer's key); the flag's locator."""
    page.goto(f"{server.base}/review")
    page.wait_for_selector("body[data-ready]")
    page.fill("#reviewer-key", server.keys.get("reviewer") or staff_key(server, "reviewer"))
    page.click("#signin-submit")
    page.click(f'.queue-item[data-id="{return_id}"]')
    flag = page.locator(f'.flag[data-code="{code}"]')
    flag.wait_for()
    page.wait_for_function(
        """code => [...document.querySelectorAll(`.flag[data-code="${code}"] .evidence-pair img`)]
            .filter(i => i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0)
            .length === 2""",
        arg=code,
    )
    return flag


def test_reused_photo_flag_shows_both_photos_the_measure_and_opens_the_other_return(
    reused: dict[str, Any],
) -> None:
    server: LiveServer = reused["server"]
    evidence = reused["flag"]["evidence"]
    assert evidence["other_return_id"] == reused["first"]
    with chromium() as browser:
        page = browser.new_context(viewport=DESKTOP).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        flag = _open_flag(page, server, reused["second"], "reused_photo")
        measure = flag.locator(".measure").first
        assert float(measure.get_attribute("data-value") or "nan") == evidence["distance"]
        assert float(measure.get_attribute("data-limit") or "nan") == evidence["max_hamming"]
        assert "threshold" in measure.inner_text()
        captions = flag.locator(".evidence-pair figcaption").all_inner_texts()
        assert captions[0] == "This item's photo" and reused["first"] in captions[1]
        screenshot(page, "review-evidence-reused-photo")
        flag.locator(f'button.open-other[data-return="{reused["first"]}"]').click()
        page.wait_for_function(
            "id => document.getElementById('h-item')?.textContent === id", arg=reused["first"]
        )
        assert errors == []


def test_catalog_photo_flag_shows_the_skus_reference_photo(reused: dict[str, Any]) -> None:
    """The other side of a catalog-photo flag is the SKU's reference photo, which has no
    photo id: the console loads it by SKU from the staff route."""
    server: LiveServer = reused["server"]
    assert reused["catalog_flag"]["evidence"]["sku"] == reused["sku"]
    with chromium() as browser:
        page = browser.new_context(viewport=DESKTOP).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        flag = _open_flag(page, server, reused["third"], "catalog_photo")
        captions = flag.locator(".evidence-pair figcaption").all_inner_texts()
        assert "Catalog reference" in captions[1] and reused["sku"] in captions[1]
        screenshot(page, "review-evidence-catalog-photo")
        assert errors == []


def test_reference_photo_route_refuses_strangers_and_unknown_skus(reused: dict[str, Any]) -> None:
    server: LiveServer = reused["server"]
    url = f"{server.base}/v1/staff/catalog/{reused['sku']}/reference"
    assert httpx.get(url).status_code == 401
    reviewer = server.keys.get("reviewer") or staff_key(server, "reviewer")
    auth = {"Authorization": f"Bearer {reviewer}"}
    ok = httpx.get(url, headers=auth)
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg"
    assert ok.content[:2] == b"\xff\xd8"
    missing = httpx.get(f"{server.base}/v1/staff/catalog/NO-SUCH/reference", headers=auth)
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_sku"
