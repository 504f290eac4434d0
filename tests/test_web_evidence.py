"""Flag evidence at a glance in the reviewer console, in real Chromium on a live server.

A second return reuses the first return's photo (re-saved at another JPEG quality). In
the console its ``reused_photo`` flag shows the measure against its threshold, the two
photos side by side (this return's and the earlier one, both fetched with the reviewer's
key), and a button that opens the earlier return.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
        first, second = (Order(f"EV-{i}", f"ev{i}@example.com", kit.approve_sku) for i in (1, 2))
        seed_shop(server, kit.catalog, [first, second])
        first_id, token = open_return(server, first, "changed_mind")
        upload(server, first_id, token, jpeg(kit.clean))
        second_id, token = open_return(server, second, "changed_mind")
        decision = upload(server, second_id, token, jpeg(kit.clean, quality=75))["decision"]
        flag = next(f for f in decision["flags"] if f["code"] == "reused_photo")
        yield {"server": server, "first": first_id, "second": second_id, "flag": flag}


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
        page.goto(f"{server.base}/review")
        page.wait_for_selector("body[data-ready]")
        page.fill("#reviewer-key", server.keys.get("reviewer") or staff_key(server, "reviewer"))
        page.click("#signin-submit")
        page.click(f'.queue-item[data-id="{reused["second"]}"]')
        flag = page.locator('.flag[data-code="reused_photo"]')
        flag.wait_for()
        measure = flag.locator(".measure").first
        assert float(measure.get_attribute("data-value") or "nan") == evidence["distance"]
        assert float(measure.get_attribute("data-limit") or "nan") == evidence["max_hamming"]
        assert "threshold" in measure.inner_text()
        page.wait_for_function(
            """() => [...document.querySelectorAll('.flag[data-code="reused_photo"] '
                + '.evidence-pair img')].filter(i => i.src.startsWith('blob:')
                && i.complete && i.naturalWidth > 0).length === 2"""
        )
        captions = flag.locator(".evidence-pair figcaption").all_inner_texts()
        assert captions[0] == "This item's photo" and reused["first"] in captions[1]
        screenshot(page, "review-evidence-reused-photo")
        flag.locator(f'button.open-other[data-return="{reused["first"]}"]').click()
        page.wait_for_function(
            "id => document.getElementById('h-item')?.textContent === id", arg=reused["first"]
        )
        assert errors == []
