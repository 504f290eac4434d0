"""``/docs`` and ``/redoc`` work offline: every asset comes from this server.

The pages are FastAPI's own (``get_swagger_ui_html`` / ``get_redoc_html``) pointed at the
Swagger UI / ReDoc files of the ``fastapi-offline`` package, mounted under
``/docs/assets``. The Chromium test renders ``/docs`` with every non-local request
refused, and checks that Swagger UI lists the API's operations (so the bundled Swagger
UI reads the OpenAPI 3.1 document FastAPI writes). Without the package the pages answer
with a local note instead; that fallback is tested too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.api import docs
from serving.app import create_app
from serving.settings import Settings
from tests.browser import chromium
from tests.requires import require_chromium

URL_ATTR = re.compile(r"""(?:src|href|url|spec-url)\s*[:=]\s*["']([^"']+)["']""")
ORIGIN = "http://returnlens.test"


def _client(tmp_path: Path) -> TestClient:
    """The real app; its lifespan (model, database) is not needed for the doc pages."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'docs.db'}", photo_dir=tmp_path / "photos"
    )
    return TestClient(create_app(settings))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    if docs.assets_dir() is None:
        pytest.skip("the fastapi-offline package (Swagger UI / ReDoc files) is not installed")
    yield _client(tmp_path)


def _urls(html: str) -> list[str]:
    return URL_ATTR.findall(html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_doc_pages_reference_only_local_urls(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    urls = _urls(r.text)
    assert "/openapi.json" in urls
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "http://" not in r.text and "https://" not in r.text
    for url in urls:  # every asset the page names is served here
        assert client.get(url).status_code == 200, url


def test_swagger_assets_are_served_and_nothing_else(client: TestClient) -> None:
    js = client.get(f"{docs.ASSETS_URL}/swagger-ui-bundle.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in js.content
    css = client.get(f"{docs.ASSETS_URL}/swagger-ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    for bad in ("nope.js", "../core.py", "%2e%2e/core.py"):
        r = client.get(f"{docs.ASSETS_URL}/{bad}")
        assert r.status_code == 404, bad
        assert r.json()["code"] == "not_found"
    assert "/docs" not in client.get("/openapi.json").json()["paths"]


def test_swagger_ui_renders_the_api_offline_in_chromium(client: TestClient) -> None:
    require_chromium()
    refused: list[str] = []

    def serve(route: object) -> None:
        request = route.request  # type: ignore[attr-defined]
        if not request.url.startswith(ORIGIN + "/"):
            refused.append(request.url)
            route.abort()  # type: ignore[attr-defined]
            return
        r = client.get(request.url[len(ORIGIN) :])
        route.fulfill(
            status=r.status_code,
            body=r.content,  # type: ignore[attr-defined]
            headers={"content-type": r.headers.get("content-type", "")},
        )

    with chromium() as browser:
        page = browser.new_page()
        page.route("**/*", serve)
        page.goto(f"{ORIGIN}/docs")
        page.wait_for_selector(".opblock", timeout=30_000)  # one block per operation
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert page.locator(".errors-wrapper").count() == 0
    assert any("/v1/returns" in p for p in paths), paths[:5]
    assert refused == [], refused


def test_without_the_package_the_pages_are_a_local_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docs, "assets_dir", lambda: None)
    client = _client(tmp_path)
    for page in ("/docs", "/redoc"):
        r = client.get(page)
        assert r.status_code == 200 and "fastapi-offline" in r.text
        assert _urls(r.text) == ["/openapi.json"]
    assert client.get(f"{docs.ASSETS_URL}/swagger-ui-bundle.js").status_code == 404
