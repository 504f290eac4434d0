"""The service's order lookup and the item name on a return (service, API, shopper page).

``ReturnLensService.lookup_order`` answers ``POST /v1/orders/lookup`` (the router only
maps JSON); an unknown order and a wrong email are the same NotFound. The return view
carries the catalog item's name so a shopper's deep link shows "Test box-01", not the
SKU. Service tests run on SQLite and PostgreSQL with the tiny model, on the ``svc``
fixture of tests/conftest.py (the one tests/test_service.py uses).
"""

from __future__ import annotations

from typing import Any

import pytest

from serving.domain_errors import NotFound
from serving.services import shopper
from serving.services.inputs import CreateReturnRequest
from serving.services.service import ReturnLensService
from tests.browser import chromium
from tests.requires import require_chromium
from tests.service_data import DELIVERED
from tests.shop import Shop

ORIGIN = "http://returnlens.test"


def test_lookup_order_lists_the_items_with_their_names(svc: ReturnLensService) -> None:
    view = shopper.lookup_order(svc, "o-1", "  A@Example.COM ")  # strip + casefold, like returns
    assert view.order_id == "o-1" and view.delivered_at == DELIVERED
    assert [(i.sku, i.name, i.category, i.price, i.quantity) for i in view.items] == [
        ("box-02", "Box", "package", 40.0, 20),
        ("mug-01", "Mug", "mug", 25.0, 20),
    ]


def test_unknown_order_and_wrong_email_are_the_same_not_found(svc: ReturnLensService) -> None:
    errors = []
    for order_id, email in (
        ("o-404", "a@example.com"),
        ("o-1", "eve@example.com"),
        ("o-2", "a@example.com"),
    ):  # o-2's customer has no email
        with pytest.raises(NotFound) as err:
            shopper.lookup_order(svc, order_id, email)
        errors.append((err.value.code, str(err.value), err.value.details))
    assert errors[0][0] == "unknown_order"
    assert errors[0] == errors[1] == errors[2]  # nothing tells which part was wrong


def test_return_view_names_the_item(svc: ReturnLensService) -> None:
    created = shopper.create_return(
        svc, CreateReturnRequest(order_id="o-1", sku="mug-01", reason="changed_mind")
    )
    view = shopper.get_return(svc, created.return_id)
    assert (view.sku, view.item_name, view.category) == ("mug-01", "Mug", "mug")


def test_api_return_carries_the_item_name(sqlite_shop: Shop) -> None:
    rid, token = sqlite_shop.open_return()
    body = sqlite_shop.client.get(
        f"/v1/returns/{rid}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert (body["sku"], body["item_name"], body["category"]) == ("box-01", "Test box-01", "box")


def test_deep_link_shows_the_item_name_in_chromium(sqlite_shop: Shop) -> None:
    """The shopper page opened from the return email's link (no order lookup before)."""
    require_chromium()
    rid, token = sqlite_shop.open_return()
    client = sqlite_shop.client

    def serve(route: Any) -> None:  # the page talks to the app through TestClient
        request = route.request
        if not request.url.startswith(ORIGIN + "/"):
            route.abort()
            return
        headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
        r = client.request(request.method, request.url[len(ORIGIN) :], headers=headers)
        route.fulfill(
            status=r.status_code,
            body=r.content,
            headers={"content-type": r.headers.get("content-type", "")},
        )

    with chromium() as browser:
        page = browser.new_page()
        page.route("**/*", serve)
        page.goto(f"{ORIGIN}/?return={rid}#token={token}")
        page.wait_for_selector("#step-photos:not([hidden])")
        summary = page.locator("#return-summary").inner_text()
    assert "Test box-01" in summary, summary
