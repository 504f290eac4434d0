"""The web pages (shopper, review console, operations dashboard) and their static assets,
served by the API process itself.

Everything the pages need ships inside the package (``serving/web/static``): HTML, CSS,
vanilla JavaScript modules, an SVG icon and one vendored chart library (``static/vendor``:
pinned, its licence beside it); no CDN, no web fonts, no build step.

Files are served by Starlette's ``StaticFiles`` (mounted at ``/static``; the page
routes ask the same instance), which already does what a hand-written route would get
wrong: path normalisation that no ``..`` or symlink can leave the folder by, ``HEAD``,
and conditional GET (an ``ETag`` and ``Last-Modified`` on every file, ``304 Not
Modified`` for ``If-None-Match`` / ``If-Modified-Since``). ``Cache-Control: no-cache``
makes browsers revalidate every time, so a new build shows at once and an unchanged one
costs a 304. :class:`PageFiles` adds two things on top: only the file types in
:data:`MEDIA_TYPES` are served, with those exact content types (the system's MIME table
differs between hosts), and every answer, the 304 included, carries the security
headers.

The HTML pages carry a strict Content-Security-Policy: scripts, styles, images and
requests may come from this origin only (images also from ``blob:``, which is how the
pages show photos fetched with a credential). That both enforces "no external assets"
and limits what an injected string could do. The shopper's token travels in the URL
fragment of a deep link, which browsers never send, and ``Referrer-Policy: no-referrer``
keeps the return id out of any other site's logs.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from serving.domain_errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_URL = "/static"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' blob: data:; connect-src 'self'; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
}
STATIC_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}


def headers_for(suffix: str) -> dict[str, str]:
    """The security headers of a file: the full page set for HTML, the asset set else."""
    return PAGE_HEADERS if suffix == ".html" else STATIC_HEADERS


class PageFiles(StaticFiles):
    """``StaticFiles`` limited to :data:`MEDIA_TYPES`, with the security headers added."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        suffix = Path(full_path).suffix
        media_type = MEDIA_TYPES.get(suffix)
        if media_type is None:  # e.g. a stray .py or .map file: not part of the pages
            raise HTTPException(status_code=404)
        response: Response = FileResponse(
            full_path, status_code=status_code, stat_result=stat_result, media_type=media_type
        )
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            response = NotModifiedResponse(response.headers)
        response.headers.update(headers_for(suffix))
        return response


static_files = PageFiles(directory=STATIC_DIR)
router = APIRouter(include_in_schema=False)
router.mount(STATIC_URL, static_files, name="static")


async def _page(name: str, request: Request) -> Response:
    try:
        return await static_files.get_response(name, request.scope)
    except HTTPException as exc:
        if exc.status_code != 404:
            raise
        raise NotFound(f"the page {name} is missing from this build", code="not_found") from exc


@router.get("/", response_class=FileResponse)
async def shopper_page(request: Request) -> Response:
    """The mobile-first return page (order lookup, item and reason, photos, decision)."""
    return await _page("index.html", request)


@router.get("/review", response_class=FileResponse)
async def review_page(request: Request) -> Response:
    """The reviewer console; the page is public, every data call needs a reviewer key."""
    return await _page("review.html", request)


@router.get("/ops", response_class=FileResponse)
async def ops_page(request: Request) -> Response:
    """The operations dashboard; the page is public, every chart's data needs a reviewer
    or admin key (``serving/api/ops.py``)."""
    return await _page("ops.html", request)
