"""The two web pages and their static assets, served by the API process itself.

Everything the pages need ships inside the package (``serving/web/static``): HTML, CSS,
vanilla JavaScript modules and an SVG icon; no CDN, no web fonts, no build step. The
static route serves only the files that exist at import time (an allow-list), so no
request path can reach outside the folder.

The HTML pages carry a strict Content-Security-Policy: scripts, styles, images and
requests may come from this origin only (images also from ``blob:``, which is how the
pages show photos fetched with a credential). That both enforces "no external assets"
and limits what an injected string could do. The shopper's token travels in the URL
fragment of a deep link, which browsers never send, and ``Referrer-Policy: no-referrer``
keeps the return id out of any other site's logs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from serving.domain_errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent / "static"

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


def _allowed_files(root: Path) -> dict[str, Path]:
    """Relative POSIX path -> file, for every servable file under ``root``."""
    if not root.is_dir():
        return {}
    return {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in MEDIA_TYPES
    }


STATIC_FILES = _allowed_files(STATIC_DIR)
router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    path = STATIC_FILES.get(name)
    if path is None:
        raise NotFound(f"the page {name} is missing from this build", code="not_found")
    return FileResponse(path, media_type=MEDIA_TYPES[".html"], headers=PAGE_HEADERS)


@router.get("/", response_class=FileResponse)
def shopper_page() -> FileResponse:
    """The mobile-first return page (order lookup, item and reason, photos, decision)."""
    return _page("index.html")


@router.get("/review", response_class=FileResponse)
def review_page() -> FileResponse:
    """The reviewer console; the page is public, every data call needs a reviewer key."""
    return _page("review.html")


@router.get("/static/{path:path}", response_class=FileResponse)
def static_file(path: str) -> FileResponse:
    found = STATIC_FILES.get(path)
    if found is None:
        raise NotFound(f"there is no static file {path!r}", code="not_found")
    headers = PAGE_HEADERS if found.suffix == ".html" else STATIC_HEADERS
    return FileResponse(found, media_type=MEDIA_TYPES[found.suffix], headers=headers)
