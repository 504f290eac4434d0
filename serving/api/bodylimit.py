"""A hard cap on request body size, answered with the JSON 413 error.

A declared ``Content-Length`` over the cap is refused before one byte is read. A body
without one (chunked) is counted as it streams and refused as soon as it passes the cap:
the over-limit receive raises :class:`BodyTooLarge`, an HTTPException, so FastAPI's body
parsing re-raises it unchanged and the JSON error handler answers 413. The cap depends
on the route: photo uploads may carry ``max_photos`` files; JSON calls get far less.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import error_response


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"the request body exceeds {limit} bytes")
        self.limit = limit


def _too_large(limit: int) -> JSONResponse:
    return error_response(
        413,
        "too_large",
        f"the request body is larger than the {limit} bytes this endpoint accepts",
        {"limit_bytes": limit},
    )


class BodyLimitMiddleware:
    """Pure ASGI middleware; ``limit_for(method, path)`` gives the cap in bytes."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("method", "GET"), scope.get("path", "/"))
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            # Raised outside FastAPI's handlers (e.g. by another middleware reading the body).
            if started:
                raise
            await _too_large(limit)(scope, receive, send)
