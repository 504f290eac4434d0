"""The shopper return page: served locally, order lookup, and the flow in real Chromium.

The first tests run in-process (TestClient): the pages and every asset they reference
come from this server with a strict CSP (no CDN, no external font), the static route
cannot leave its folder, and the order lookup answers an unknown order and a wrong
email alike.

The browser tests drive Debian's Chromium through Playwright against a live uvicorn
server (subprocess) with real JPEG files on disk, exactly as a shopper's browser sends
them: a 2400x1800 phone photo stored sideways with an EXIF orientation tag is picked,
downscaled to 1600 px and turned upright in the browser, uploaded with progress, and
approved; a blurred photo gets a retake request with guidance next to its thumbnail,
and a sharp retake of that photo is approved without starting over. Which model grades
is said in ``PhotoKit.model_name`` (the shipped default model when it exists, else the
tiny test model with photos that steer it). Screenshots at phone (390x844) and desktop
(1280x800) size go to ``test-artifacts/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from serving.storage.tables import Photo
from tests.browser import (
    DESKTOP,
    PHONE,
    LiveServer,
    Order,
    PhotoKit,
    accessibility_problems,
    chromium,
    live_server,
    overflowing,
    phone_photo_file,
    photo_kit,
    screenshot,
    seed_shop,
    web_app,
)
from tests.photo_factory import encode
from tests.requires import require_chromium
from tests.shop import EMAIL, Shop, load_shop, make_settings

EXTERNAL = re.compile(r"""(?:https?:)?//(?!www\.w3\.org/2000/svg)[a-z0-9.-]+\.[a-z]{2,}""", re.I)


# ----------------------------------------------------------------------- in-process
@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Shop]:
    """The demo shop on SQLite, once for this module (overrides conftest's per-test one)."""
    root = tmp_path_factory.mktemp("web")
    settings = make_settings(f"sqlite:///{root / 'web.db'}", root, tiny_model)
    with TestClient(web_app(settings)) as client:
        yield load_shop(client, settings)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        for key in ("src", "href"):
            if a.get(key):
                self.refs.append(str(a[key]))


def _parse(html: str) -> _Refs:
    parser = _Refs()
    parser.feed(html)
    return parser


@pytest.mark.parametrize("path", ["/", "/review"])
def test_pages_and_every_asset_are_served_locally(shop: Shop, path: str) -> None:
    r = shop.client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert r.headers["referrer-policy"] == "no-referrer"
    refs = _parse(r.text).refs
    assets = [ref for ref in refs if ref.startswith("/static/")]
    assert {"/static/css/app.css", "/static/favicon.svg"} <= set(assets)
    for ref in refs:  # local paths or in-page fragments only: no CDN, no external font
        assert ref.startswith(("/", "#")) and not ref.startswith("//"), ref
    assert not EXTERNAL.search(r.text)
    for ref in assets:
        asset = shop.client.get(ref)
        assert asset.status_code == 200, ref
        assert not EXTERNAL.search(asset.text), f"{ref} references an external host"
    for module in re.findall(
        r'from "\./([a-z]+\.js)"',
        shop.client.get("/static/js/review.js").text
        + shop.client.get("/static/js/shopper.js").text,
    ):
        assert shop.client.get(f"/static/js/{module}").status_code == 200


def test_static_route_serves_known_files_only(shop: Shop) -> None:
    js = shop.client.get("/static/js/shopper.js")
    assert js.headers["content-type"].startswith("text/javascript")
    assert shop.client.get("/static/css/app.css").headers["content-type"].startswith("text/css")
    for bad in (
        "/static/../pages.py",
        "/static/%2e%2e/pages.py",
        "/static/nope.js",
        "/static/js/../../__init__.py",
    ):
        r = shop.client.get(bad)
        assert r.status_code == 404, bad
        assert r.json()["code"] == "not_found"


def test_shopper_page_controls_are_labelled_and_camera_ready(shop: Shop) -> None:
    page = _parse(shop.client.get("/").text)
    ids = {a.get("id"): (tag, a) for tag, a in page.tags if a.get("id")}
    labelled = {a.get("for") for tag, a in page.tags if tag == "label"}
    for tag, a in page.tags:
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            assert a.get("id") in labelled or a.get("aria-label"), a
    camera = ids["camera-input"][1]
    assert camera["type"] == "file" and camera["accept"] == "image/*"
    assert camera["capture"] == "environment" and "multiple" in camera
    reasons = [str(a["value"]) for tag, a in page.tags if tag == "option" and a.get("value")]
    assert sorted(reasons) == sorted(
        [
            "changed_mind",
            "does_not_fit",
            "not_as_described",
            "defective",
            "damaged_in_transit",
            "wrong_item",
        ]
    )
    assert ids["live"][1].get("aria-live") == "polite"


def test_order_lookup_lists_items_and_hides_which_part_was_wrong(shop: Shop) -> None:
    ok = shop.client.post(
        "/v1/orders/lookup", json={"order_id": "ORD-1", "email": f"  {EMAIL.upper()} "}
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["order_id"] == "ORD-1" and body["delivered_at"]
    assert body["items"] == [
        {"sku": "box-01", "name": "Test box-01", "category": "box", "price": 49.0, "quantity": 20}
    ]
    wrong_email = shop.client.post(
        "/v1/orders/lookup", json={"order_id": "ORD-1", "email": "eve@example.com"}
    )
    unknown = shop.client.post("/v1/orders/lookup", json={"order_id": "ORD-404", "email": EMAIL})
    assert wrong_email.status_code == unknown.status_code == 404
    assert wrong_email.json() == unknown.json()
    assert unknown.json()["code"] == "unknown_order"
    bad = shop.client.post("/v1/orders/lookup", json={"order_id": "ORD-1", "email": "nope"})
    assert bad.status_code == 422 and bad.json()["details"]["field"] == "email"
    extra = shop.client.post(
        "/v1/orders/lookup", json={"order_id": "ORD-1", "email": EMAIL, "x": 1}
    )
    assert extra.status_code == 422


# ----------------------------------------------------------------------- in Chromium
@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, PhotoKit]]:
    require_chromium()
    root = tmp_path_factory.mktemp("live-shopper")
    kit = photo_kit(root)
    with live_server(root / "server", kit.model) as server:
        seed_shop(
            server,
            kit.catalog,
            [
                Order("WEB-A", "ada@example.com", kit.approve_sku),
                Order("WEB-B", "ben@example.com", kit.retake_sku),
            ],
        )
        yield server, kit


def _stored_photos(server: LiveServer) -> list[Photo]:
    engine = create_engine(server.database_url)
    try:
        with Session(engine, expire_on_commit=False) as s:
            rows = list(s.scalars(select(Photo).order_by(Photo.created_at)))
            s.expunge_all()
            return rows
    finally:
        engine.dispose()


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


def _start_return(page: Any, base: str, order: str, email: str, reason: str) -> None:
    page.goto(f"{base}/")
    page.wait_for_selector("body[data-ready]")
    page.fill("#order-id", order)
    page.fill("#email", email)
    page.keyboard.press("Enter")  # submit with the keyboard
    page.wait_for_selector("#step-item:not([hidden])")
    page.select_option("#reason", reason)
    page.click("#item-submit")
    page.wait_for_selector("#step-photos:not([hidden])")


@pytest.mark.browser
def test_clean_phone_photo_is_downscaled_upright_and_approved(
    live: tuple[LiveServer, PhotoKit], tmp_path: Path
) -> None:
    server, kit = live
    photo = phone_photo_file(kit.clean, tmp_path / "IMG_0001.jpg")
    with chromium() as browser:
        context = browser.new_context(viewport=PHONE, device_scale_factor=1)
        page = context.new_page()
        errors = _watch(page)
        page.goto(f"{server.base}/")
        page.wait_for_selector("body[data-ready]")
        assert page.evaluate("document.activeElement.tagName") in ("BODY", "MAIN")
        screenshot(page, "shopper-1-order-phone")
        page.click("#order-submit")  # empty form: say what is missing, mark the fields
        assert "Enter your order number" in page.inner_text("#order-error")
        assert page.get_attribute("#order-id", "aria-invalid") == "true"
        page.fill("#order-id", "WEB-A")
        page.fill("#email", "someone.else@example.com")
        page.click("#order-submit")
        page.wait_for_selector('#order-error:has-text("find an order")')
        screenshot(page, "shopper-1b-order-not-found-phone")
        page.fill("#order-id", "")
        page.fill("#email", "")
        # Keyboard: Tab reaches the order field, the email field, then the button,
        # and the focused control shows a visible focus ring.
        page.focus("#order-id")
        page.keyboard.type("WEB-A")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "email"
        page.keyboard.type("Ada@Example.com")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline not in ("none", ""), outline
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "order-submit"
        page.keyboard.press("Enter")
        page.wait_for_selector("#step-item:not([hidden])")
        assert page.is_checked("#item-0")  # the order's only item is preselected
        page.select_option("#reason", "changed_mind")
        screenshot(page, "shopper-2-item-phone")
        page.click("#item-submit")
        page.wait_for_selector("#step-photos:not([hidden])")
        assert "token" not in page.url and "return=" in page.url
        page.set_input_files("#camera-input", str(photo))
        page.wait_for_selector("#send-photos:not([disabled])")
        screenshot(page, "shopper-3-photo-chosen-phone")
        page.click("#send-photos")
        page.wait_for_selector("#decision:not([hidden])")
        screenshot(page, "shopper-4-approved-phone")
        decision = page.inner_text("#decision")
        assert "approved" in decision.lower(), (kit.model_name, decision, server.log())
        assert page.get_attribute("#decision", "class") == "decision decision--approved"
        assert page.inner_text("#photo-grid .status").strip() == "Photo looks good"
        assert page.eval_on_selector("#upload-bar", "e => e.value") == 100
        assert int(page.eval_on_selector("#upload-bar", "e => e.dataset.events")) >= 1
        assert page.is_hidden("#capture-area")  # approved: nothing more to add
        assert "approved" in page.inner_text("#live").lower()
        assert accessibility_problems(page) == []
        assert overflowing(page) == []
        assert errors == []
        context.close()
    stored = _stored_photos(server)[-1]
    # The browser sent <= 1600 px: downscaled from 2400 px and turned upright from EXIF 6,
    # so the stored size has the kit photo's upright aspect ratio.
    h, w = kit.clean.shape[:2]
    scale = 1600 / max(h, w)
    assert (stored.original_width, stored.original_height) == (round(w * scale), round(h * scale))
    assert stored.upload_format == "jpeg"


@pytest.mark.browser
def test_blurred_photo_gets_guidance_and_a_retake_is_approved(
    live: tuple[LiveServer, PhotoKit], tmp_path: Path
) -> None:
    server, kit = live
    blurred = tmp_path / "blurred.jpg"
    blurred.write_bytes(encode(kit.blurred, "JPEG", quality=90))
    sharp = tmp_path / "sharp.jpg"
    sharp.write_bytes(encode(kit.retake, "JPEG", quality=90))
    with chromium() as browser:
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        errors = _watch(page)
        _start_return(page, server.base, "WEB-B", "ben@example.com", "does_not_fit")
        screenshot(page, "shopper-5-photos-desktop")
        page.set_input_files("#library-input", str(blurred))
        page.wait_for_selector("#send-photos:not([disabled])")
        page.click("#send-photos")
        page.wait_for_selector("#decision.decision--retake")
        card = page.locator("#photo-grid .photo-card.failed")
        assert card.count() == 1
        advice = card.locator("ul.advice").inner_text().lower()
        assert "blur" in advice, advice  # the quality check's own retake guidance
        assert page.locator("#photo-grid img").first.get_attribute("alt")
        screenshot(page, "shopper-6-retake-desktop")
        context.set_default_timeout(15_000)
        with page.expect_file_chooser() as chooser:
            card.locator("button.retake").click()
        chooser.value.set_files(str(sharp))
        page.wait_for_selector("#decision.decision--approved")
        # Approved: the return label is issued and shown, with both downloads.
        page.wait_for_selector("#label-box:not([hidden]) #label-image[src^=blob]")
        assert page.locator("#label-pdf").get_attribute("href", timeout=5000).startswith("blob:")
        screenshot(page, "shopper-7-retake-approved-desktop")
        cards = page.locator("#photo-grid .photo-card")
        assert cards.count() == 1  # the retake replaced the failed photo's card
        assert "retake" in cards.first.locator(".meta").inner_text()
        assert accessibility_problems(page) == []
        assert overflowing(page) == []
        return_id = page.url.split("return=")[1]
        token = page.evaluate(f"sessionStorage.getItem('returnlens.token.{return_id}')")
        assert token and errors == []
        context.close()

        # The deep link from the shopper's email, opened on a phone: the token travels in
        # the fragment, is moved to session storage and removed from the address bar.
        phone = browser.new_context(viewport=PHONE)
        page = phone.new_page()
        errors = _watch(page)
        page.goto(f"{server.base}/?return={return_id}#token={token}")
        page.wait_for_selector("#decision.decision--label_issued")  # the label was issued
        assert "approved" in page.locator("#decision-title").inner_text()
        page.wait_for_selector("#label-box:not([hidden]) #label-image[src^=blob]")
        statuses = page.locator("#timeline li").evaluate_all(
            "items => items.map((li) => li.dataset.status)"
        )
        assert statuses == ["awaiting_photos", "retake", "approved", "label_issued"]
        page.wait_for_function(
            "() => document.querySelectorAll('#photo-grid img[src^=blob]').length === 2"
        )
        assert "token" not in page.url
        # Decided: the blurred photo is shown as not used, with no retake button.
        assert page.locator("#photo-grid .photo-card.unused").count() == 1
        assert page.locator("#photo-grid button.retake").count() == 0
        screenshot(page, "shopper-8-deep-link-phone")
        assert accessibility_problems(page) == []
        assert overflowing(page) == []
        assert errors == []
        stranger = phone.new_page()  # a wrong token opens nothing
        stranger.goto(f"{server.base}/?return={return_id}#token=not-the-token")
        stranger.wait_for_selector("#step-missing:not([hidden])")
        assert "token" not in stranger.url
        phone.close()
    with server.http() as client:
        ret = client.get(
            f"/v1/returns/{return_id}", headers={"Authorization": f"Bearer {token}"}
        ).json()
    assert [d["outcome"] for d in ret["decisions"]] == ["retake", "approved"]
    assert ret["status"] == "label_issued"
