"""Interactive API docs served from local files: ``/docs`` (Swagger UI), ``/redoc``.

FastAPI's built-in pages load Swagger UI, ReDoc and a favicon from CDNs (and ReDoc
Google Fonts), so they stay blank on an offline dock network or an air-gapped server.
Here the same pages (``get_swagger_ui_html`` / ``get_redoc_html``) point at the asset
files shipped in the ``fastapi-offline`` package (Swagger UI 5, which renders the
OpenAPI 3.1 document FastAPI writes), mounted under ``/docs/assets``. The app must be
created with ``docs_url=None, redoc_url=None``.

Without that package the two pages still answer, with a short local note that points
at ``/openapi.json`` instead of a page that hangs on a CDN.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs/assets"
FAVICON_URL = "/static/favicon.svg"  # the web pages' icon (serving/web/static)
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")
# No online validator badge (an image request to validator.swagger.io on every visit).
SWAGGER_PARAMETERS: dict[str, object] = {"validatorUrl": None}


def assets_dir() -> Path | None:
    """The folder holding the Swagger UI / ReDoc files, or None when not installed."""
    try:
        from importlib.resources import files

        root = Path(str(files("fastapi_offline").joinpath("static")))
    except (ImportError, TypeError):  # not installed / not a plain folder
        return None
    return root if all((root / name).is_file() for name in ASSET_FILES) else None


def _base(request: Request) -> str:
    """The proxy prefix (ASGI root_path), so the pages work behind a path-mounting proxy."""
    return str(request.scope.get("root_path") or "").rstrip("/")


def _missing_page(app: FastAPI, what: str) -> HTMLResponse:
    title = html.escape(f"{app.title} - {what}")
    spec = html.escape(str(app.openapi_url))
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}'
        f"</title></head><body><h1>{title}</h1><p>The {what} files are not installed on "
        f"this server (Python package <code>fastapi-offline</code>). The API description "
        f'is at <a href="{spec}">{spec}</a>.</p></body></html>'
    )


def install_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add the two doc pages (and the asset mount) to ``app``."""
    root = assets_dir()
    if root is not None:
        app.mount(ASSETS_URL, StaticFiles(directory=root), name="docs-assets")

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        if root is None:
            return _missing_page(app, "Swagger UI")
        base = _base(request)
        return get_swagger_ui_html(
            openapi_url=f"{base}{app.openapi_url}",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{base}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{base}{FAVICON_URL}",
            swagger_ui_parameters=SWAGGER_PARAMETERS | (app.swagger_ui_parameters or {}),
        )

    @app.get(redoc_url, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        if root is None:
            return _missing_page(app, "ReDoc")
        base = _base(request)
        return get_redoc_html(
            openapi_url=f"{base}{app.openapi_url}",
            title=f"{app.title} - API reference",
            redoc_js_url=f"{base}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{base}{FAVICON_URL}",
            with_google_fonts=False,
        )
