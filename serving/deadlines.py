"""Read deadlines for slow and stalled clients, kept by the HTTP protocol itself.

uvicorn's h11 protocol closes idle keep-alive connections, but it has no deadline for
*reading* a request: a client that sends half its headers, or declares a body and then
stops sending it, holds its connection open for ever (a thousand of them hold a worker's
connection slots and buffers; "slowloris"). The ASGI app cannot help: it only hears of a
request once its head is complete, and a stalled body just leaves it waiting.

:class:`DeadlineH11Protocol` is uvicorn's h11 protocol with two deadlines, each a fixed
point in time (a client dripping one byte a second does not push it back):

- **head**: from the moment the connection waits for a request (accepted, or the
  previous response sent) until the request head is complete: ``header_timeout_s``;
- **body**: from the complete head until the whole body has arrived:
  ``body_timeout_s``. Nothing runs while the app works on a request (inference may
  take seconds).

Past a deadline the connection is closed; a client that sent part of a request first
gets ``408 {"code": "request_timeout", ...}`` when no answer was started, and an app
still reading the body sees the client disconnect. ``0`` turns a deadline off. The
third limit, a cap on concurrent connections per worker, is uvicorn's own
``limit_concurrency`` (``Settings.max_connections``): over it, a request is answered
503. ``returnlens serve`` uses all three (``serving/commands/service.py``); a plain
``uvicorn serving.app:create_app --factory`` needs ``--http
serving.deadlines:DeadlineH11Protocol --limit-concurrency N``.

The deadlines are class attributes, set per process by :func:`configure` (called by
``create_app`` from the settings), because uvicorn builds one protocol per connection
from an import string and passes it nothing of the app.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

Waiting = Literal["head", "body"]
TIMEOUT_BODY = json.dumps(
    {
        "code": "request_timeout",
        "message": "the request did not arrive in time; the connection is closed",
        "details": {},
    }
).encode()
TIMEOUT_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(TIMEOUT_BODY)).encode()),
    (b"connection", b"close"),
]


def configure(header_timeout_s: float, body_timeout_s: float) -> None:
    """Set this process's read deadlines (seconds; 0 = none) for new connections."""
    DeadlineH11Protocol.header_timeout_s = header_timeout_s
    DeadlineH11Protocol.body_timeout_s = body_timeout_s


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a head deadline and a body deadline."""

    header_timeout_s: ClassVar[float] = 10.0
    body_timeout_s: ClassVar[float] = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting: Waiting | None = None

    # uvicorn's hooks: after each, put the deadline of h11's read state in place.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _want(self) -> Waiting | None:
        state = self.conn.their_state
        if state is h11.IDLE:
            return "head"
        if state is h11.SEND_BODY:
            return "body"
        return None  # request complete (the app is working), or closing

    def _arm(self) -> None:
        if self.transport is None or self.transport.is_closing():
            self._cancel()
            return
        want = self._want()
        if want is not None and want == self._waiting:
            return  # the running deadline stands: more bytes do not extend it
        self._cancel()
        timeout = self.header_timeout_s if want == "head" else self.body_timeout_s
        if want is None or timeout <= 0:
            return
        self._waiting = want
        self._deadline = self.loop.call_later(timeout, self._expired, want)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._waiting = None, None

    def _expired(self, what: Waiting) -> None:
        self._deadline, self._waiting = None, None
        if self.transport.is_closing() or self._want() != what:
            return
        if what == "head":
            if self.conn.trailing_data[0]:  # part of a head arrived: say why it ends
                self._write_timeout_raw()
        else:
            cycle = self.cycle
            if cycle is not None and not cycle.response_started:
                self._write_timeout()
            if cycle is not None:  # the app's receive() now reports a disconnect
                cycle.disconnected = True
                cycle.message_event.set()
        self.logger.info(
            "%s: closed after the request %s did not arrive within %.0f s",
            f"{self.client[0]}:{self.client[1]}" if self.client else "client",
            what,
            self.header_timeout_s if what == "head" else self.body_timeout_s,
        )
        self.transport.close()

    def _write_timeout(self) -> None:
        """408 through h11 (the request head was read, so a response may start)."""
        try:
            out = self.conn.send(
                h11.Response(status_code=408, headers=TIMEOUT_HEADERS, reason=b"Request Timeout")
            )
            out = (out or b"") + (self.conn.send(h11.Data(data=TIMEOUT_BODY)) or b"")
            out += self.conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            return
        self.transport.write(out)

    def _write_timeout_raw(self) -> None:
        """408 before any request head was read (h11 cannot answer what it never saw)."""
        head = b"HTTP/1.1 408 Request Timeout\r\n" + b"".join(
            name + b": " + value + b"\r\n" for name, value in TIMEOUT_HEADERS
        )
        self.transport.write(head + b"\r\n" + TIMEOUT_BODY)
