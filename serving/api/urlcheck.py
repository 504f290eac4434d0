"""Refuse a URL that carries a NUL character, before any route sees it.

An id such as ``/v1/returns/ret_%00abc`` would reach the database as a query parameter,
and PostgreSQL's text types cannot hold NUL: the driver raises and the request would end
in a 500, where SQLite answers 404. No id, SKU or query value of the service contains
NUL, so the request is refused once, here, with the same answer on both databases.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from serving.errors import error_response

_MESSAGE = "The URL contains a NUL character (%00); no id or query value of this API has one."


class NulInUrlMiddleware:
    """Pure ASGI middleware: 400 ``invalid_url`` for NUL in the path or query string."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")
        ):
            await error_response(400, "invalid_url", _MESSAGE)(scope, receive, send)
            return
        await self.app(scope, receive, send)
