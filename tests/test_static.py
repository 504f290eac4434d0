"""The web pages' static files: security headers on every answer, and conditional GET.

The files come from Starlette's ``StaticFiles`` (``serving/web/pages.py``), so a browser
revalidating an unchanged asset gets ``304 Not Modified`` for its ``If-None-Match``;
the security headers must survive that path too. A bare FastAPI app with just the web
router is enough: no model, no database.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from serving.errors import install_error_handlers
from serving.web import pages


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(pages.router)
    return TestClient(app)


def _has_headers(headers: object, expected: dict[str, str]) -> None:
    for name, value in expected.items():
        assert headers[name] == value, name  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/static/js/shopper.js", pages.STATIC_HEADERS),
        ("/static/css/app.css", pages.STATIC_HEADERS),
        ("/static/index.html", pages.PAGE_HEADERS),
        ("/", pages.PAGE_HEADERS),
        ("/review", pages.PAGE_HEADERS),
    ],
)
def test_etag_and_304_keep_the_security_headers(
    client: TestClient, path: str, expected: dict[str, str]
) -> None:
    first = client.get(path)
    assert first.status_code == 200 and first.content
    etag = first.headers["etag"]
    assert etag and first.headers["last-modified"]
    _has_headers(first.headers, expected)

    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    _has_headers(again.headers, expected)

    changed = client.get(path, headers={"If-None-Match": '"some-other-version"'})
    assert changed.status_code == 200 and changed.content == first.content


def test_content_types_come_from_the_allow_list(client: TestClient) -> None:
    for path, suffix in (
        ("/static/js/common.js", ".js"),
        ("/static/favicon.svg", ".svg"),
        ("/", ".html"),
    ):
        assert client.get(path).headers["content-type"] == pages.MEDIA_TYPES[suffix]


def test_paths_outside_the_folder_are_not_found(client: TestClient) -> None:
    for bad in (
        "/static/%2e%2e/pages.py",
        "/static/js/%2e%2e/%2e%2e/__init__.py",
        "/static/nope.js",
        "/static/js",
    ):
        r = client.get(bad)
        assert r.status_code == 404, bad
        assert r.json()["code"] == "not_found"


def test_file_types_outside_the_allow_list_are_not_found(tmp_path: Path) -> None:
    (tmp_path / "app.css").write_text("body {}")
    (tmp_path / "secret.py").write_text("KEY = 1")
    app = FastAPI()
    install_error_handlers(app)
    app.mount("/s", pages.PageFiles(directory=tmp_path))
    with TestClient(app) as c:
        assert c.get("/s/app.css").status_code == 200
        r = c.get("/s/secret.py")
        assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_head_answers_without_a_body(client: TestClient) -> None:
    r = client.head("/static/css/app.css")
    assert r.status_code == 200 and r.content == b"" and r.headers["etag"]
    assert r.headers["x-content-type-options"] == "nosniff"
