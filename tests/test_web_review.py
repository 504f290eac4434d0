"""The reviewer console in real Chromium against a live server.

Set-up through the API: a return whose photo shows damage that contradicts its reason
(needs_review) and was also graded at the dock, and an approved return whose item
arrived damaged at the dock (a flagged inspection). In the console a reviewer signs in
with a reviewer key, sorts the queue, opens the flagged return, sees its flags with
evidence, the scores, the shopper photos beside the dock photos and heatmap overlays,
corrects the grade and damage labels with a note, and the label is checked in the
database. Screenshots at phone and desktop size go to ``test-artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from serving.storage.tables import Return, Review
from tests.browser import (
    DESKTOP,
    PHONE,
    LiveServer,
    Order,
    PhotoKit,
    accessibility_problems,
    chromium,
    inspect,
    jpeg,
    live_server,
    open_return,
    overflowing,
    photo_kit,
    screenshot,
    seed_shop,
    upload,
)
from tests.requires import require_chromium

pytestmark = pytest.mark.browser
PHOTOS_SHOWN = "() => document.querySelectorAll('.gallery img[src^=blob]').length >= 2"


@pytest.fixture(scope="module")
def flagged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_chromium()
    root = tmp_path_factory.mktemp("live-review")
    kit: PhotoKit = photo_kit(root)
    with live_server(root / "server", kit.model) as server:
        review_order = Order("REV-1", "cleo@example.com", kit.review_sku)
        approved_order = Order("REV-2", "dan@example.com", kit.approve_sku)
        seed_shop(server, kit.catalog, [review_order, approved_order])
        rid, token = open_return(server, review_order, "changed_mind")
        result = upload(server, rid, token, jpeg(kit.damaged))
        assert result["decision"]["outcome"] == "needs_review", result["decision"]
        inspect(server, rid, "rev-1-dock", jpeg(kit.damaged, quality=80))
        ok_rid, ok_token = open_return(server, approved_order, "changed_mind")
        assert (
            upload(server, ok_rid, ok_token, jpeg(kit.clean))["decision"]["outcome"] == "approved"
        )
        dock = inspect(server, ok_rid, "rev-2-dock", jpeg(kit.dock_damaged))
        assert dock["needs_review"], dock  # much worse than the shopper's photos
        yield {
            "server": server,
            "kit": kit,
            "return_id": rid,
            "decision": result["decision"],
            "inspection_id": dock["inspection_id"],
        }


def _watch(page: Any) -> list[str]:
    """Page errors and console errors, except the browser's own log line for an API call
    that answered 4xx on purpose (the page shows those to the person)."""
    errors: list[str] = []

    def on_console(m: Any) -> None:
        api_refusal = "/v1/" in str(m.location.get("url", "")) and "status of 4" in m.text
        if m.type == "error" and not api_refusal:
            errors.append(f"console {m.type}: {m.text} ({m.location.get('url')})")

    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("console", on_console)
    return errors


def _sign_in(page: Any, base: str, key: str) -> None:
    page.goto(f"{base}/review")
    page.wait_for_selector("body[data-ready]")
    page.fill("#reviewer-key", key)
    page.click("#signin-submit")
    page.wait_for_selector("#console:not([hidden])")
    page.wait_for_selector(".queue-item")


def _stored_review(server: LiveServer, return_id: str) -> tuple[Review, str]:
    engine = create_engine(server.database_url)
    try:
        with Session(engine) as s:
            review = s.scalars(select(Review).where(Review.subject_id == return_id)).one()
            status = s.get(Return, return_id)
            assert status is not None
            s.expunge_all()
            return review, status.status
    finally:
        engine.dispose()


def test_reviewer_corrects_a_flagged_return_and_the_label_is_stored(
    flagged: dict[str, Any],
) -> None:
    server: LiveServer = flagged["server"]
    rid: str = flagged["return_id"]
    model_grade = flagged["decision"]["grade"]["label"]
    new_grade = "C_good" if model_grade != "C_good" else "B_like_new"
    with chromium() as browser:
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        errors = _watch(page)
        page.goto(f"{server.base}/review")
        page.wait_for_selector("#signin:not([hidden])")
        assert accessibility_problems(page) == []
        page.fill("#reviewer-key", "not-a-key")
        page.click("#signin-submit")
        page.wait_for_selector("#signin-error:not([hidden])")
        assert "not accepted" in page.inner_text("#signin-error")
        _sign_in(page, server.base, server.keys["reviewer"])
        assert (
            page.evaluate("sessionStorage.getItem('returnlens.reviewerKey')")
            == server.keys["reviewer"]
        )
        items = page.locator(".queue-item")
        kinds = {items.nth(i).get_attribute("data-type") for i in range(items.count())}
        assert kinds == {"return", "inspection"}
        page.select_option("#sort", "value")
        page.wait_for_selector('#queue[data-sort="value"] .queue-item')
        texts = page.locator(".queue-item .value").all_inner_texts()
        values = [float(v.split()[-1]) for v in texts]
        assert values == sorted(values, reverse=True)

        page.click(f'.queue-item[data-id="{rid}"]')
        page.wait_for_selector("#h-item")
        page.wait_for_function(PHOTOS_SHOWN)
        detail = page.inner_text("#detail-body")
        for flag in flagged["decision"]["flags"]:
            if flag.get("effect") != "note":
                assert flag["code"] in detail
        assert "Shopper photos" in detail and "Dock photos" in detail
        assert page.locator(".gallery").nth(1).locator("img").count() == 1  # the dock photo
        assert page.locator(".evidence dt").count() >= 1  # flags carry their evidence
        assert page.locator(".score-table").count() == 2  # grade and damage scores
        screenshot(page, "review-1-detail-desktop")

        # Heatmap overlay for one damage label, on every photo.
        before = page.eval_on_selector(".gallery img", "e => e.src")
        page.check('input[name="overlay"][value="crack"]')
        page.wait_for_function(
            "before => document.querySelector('.gallery img').src !== before", arg=before
        )
        assert "crack heatmap" in page.get_attribute(".gallery img", "alt")
        screenshot(page, "review-2-heatmap-desktop")
        assert accessibility_problems(page) == []
        assert overflowing(page) == []

        # Nothing is preselected: submitting without a choice asks for one.
        page.click("#verdict-submit")
        page.wait_for_selector("#verdict-error:not([hidden])")
        # Correct the grade and the damage labels, with a note.
        page.check('input[name="verdict"][value="correct"]')
        page.wait_for_selector("#v-grade", state="visible")
        page.select_option("#v-grade", new_grade)
        for box in page.locator('input[name="damage"]').all():
            box.set_checked(box.get_attribute("value") == "scratch")
        page.fill("#v-note", "Only a light scratch; the red is the glaze.")
        page.click("#verdict-submit")
        page.wait_for_selector("#verdict-done:not([hidden])")
        assert "corrected" in page.inner_text("#verdict-done").lower()
        assert page.locator(f'.queue-item[data-id="{rid}"]').count() == 0  # left the queue
        assert "Reviewed" in page.inner_text("#detail-body .audit")
        screenshot(page, "review-3-corrected-desktop")
        page.click("#sign-out")  # the tab forgets the key and shows the form again
        page.wait_for_selector("#signin:not([hidden])")
        assert page.locator("#console").is_hidden() and page.locator("#user-bar").is_hidden()
        assert page.evaluate("sessionStorage.getItem('returnlens.reviewerKey')") is None
        assert errors == []
        context.close()

        # Phone size: the flagged dock inspection, shopper photos beside the dock photo.
        phone = browser.new_context(viewport=PHONE)
        page = phone.new_page()
        errors = _watch(page)
        _sign_in(page, server.base, server.keys["reviewer"])
        screenshot(page, "review-4-queue-phone")
        page.click(f'.queue-item[data-id="{flagged["inspection_id"]}"]')
        page.wait_for_selector("#h-item")
        page.wait_for_function(PHOTOS_SHOWN)
        assert "discrepancy" in page.inner_text("#detail-body").lower()
        screenshot(page, "review-5-inspection-phone")
        assert accessibility_problems(page) == []
        assert overflowing(page) == []
        assert errors == []
        phone.close()

    review, status = _stored_review(server, rid)
    assert (review.verdict, review.grade, review.damage) == ("correct", new_grade, ["scratch"])
    assert review.note == "Only a light scratch; the red is the glaze."
    assert review.reviewer == "browser-reviewer" and review.photo_ids
    assert status == "reviewed"
