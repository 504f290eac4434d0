"""Read deadlines and a head-size cap for slow, stalled and oversized requests, kept by
the HTTP protocol itself.

uvicorn closes idle keep-alive connections, but it has no deadline for *reading* a
request: a client that sends half its headers, or declares a body and then stops
sending it, holds its connection open for ever (a thousand of them hold a worker's
connection slots and buffers; "slowloris"). The ASGI app cannot help: it only hears of a
request once its head is complete, and a stalled body just leaves it waiting.

:class:`DeadlineProtocol` is uvicorn's httptools protocol (the llhttp parser, in C) with
two deadlines, each a fixed point in time (a client dripping one byte a second does not
push it back):

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
503 ``too_many_connections``. ``returnlens serve`` uses all three
(``serving/commands/service.py``); a plain ``uvicorn serving.app:create_app --factory``
needs ``--http serving.deadlines:DeadlineProtocol --limit-concurrency N``.

llhttp itself has no limit on a request head's size (h11, which this protocol replaced,
had 16 KiB): a head of more than ``MAX_HEAD_BYTES`` gets ``431 {"code":
"request_head_too_large"}`` and the connection is closed, so one header line cannot
grow a worker's memory for as long as its deadline lasts. A complete head is measured
from its parts (request line and headers); one still incomplete after a chunk is read
by the chunks read since it began, an upper bound (a chunk that ends one pipelined
request's body and starts the next head counts whole), because httptools holds a
header's unfinished name and value to itself. A request the parser refuses gets ``400
{"code": "invalid_http"}`` (uvicorn's own answer is a line of plain text). The log line
of each refusal says which it was (uvicorn's protocol warns "Invalid HTTP request
received." for a head over the limit too).

Why httptools and not h11: h11 parses in Python and copies the body through its receive
buffer. ``benchmarks/http_protocol.py`` measures a worker's CPU per upload with both
protocols: about 2.5 ms less per 2.7 MB (12 MP) photo here, 0.5 ms per 1600 px photo.

Every connection the protocol answers or closes itself is counted by reason
(``Metrics.connections_cut``, ``returnlens_connections_cut_total``): the app's request
metrics never see it.

The deadlines and the counting hook are class attributes, set per process by
:func:`configure` (called by ``create_app`` from the settings), because uvicorn builds
one protocol per connection from an import string and passes it nothing of the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import httptools
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from serving.errors import ErrorBody

Waiting = Literal["head", "body"]
MAX_HEAD_BYTES = 16 * 1024  # the request line and headers, at most (h11's default)


def _error_body(code: str, message: str) -> bytes:
    """The service's error shape (``serving.errors.ErrorBody``) as JSON bytes."""
    return ErrorBody(code=code, message=message).model_dump_json().encode()


def _closing_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    """The headers of a JSON error ``body`` after which the connection is closed."""
    return [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]


def _answer(status: bytes, code: str, message: str) -> bytes:
    """A whole JSON error response that closes the connection, as raw bytes."""
    body = _error_body(code, message)
    head = b"".join(name + b": " + value + b"\r\n" for name, value in _closing_headers(body))
    return b"HTTP/1.1 " + status + b"\r\n" + head + b"\r\n" + body


TIMEOUT = _answer(
    b"408 Request Timeout",
    "request_timeout",
    "the request did not arrive in time; the connection is closed",
)
INVALID = _answer(
    b"400 Bad Request",
    "invalid_http",
    "the request is not valid HTTP/1.1; the connection is closed",
)
TOO_LARGE = _answer(
    b"431 Request Header Fields Too Large",
    "request_head_too_large",
    f"the request line and headers are over {MAX_HEAD_BYTES} bytes; the connection is closed",
)
BUSY_BODY = _error_body(
    "too_many_connections",
    "this worker is serving as many connections as it may; try again shortly",
)


async def _too_many_connections(scope: Any, receive: Any, send: Any) -> None:
    """uvicorn's answer over ``limit_concurrency``, in the service's error shape."""
    headers = _closing_headers(BUSY_BODY)
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": BUSY_BODY, "more_body": False})


def configure(
    header_timeout_s: float, body_timeout_s: float, on_cut: Callable[[str], None] | None = None
) -> None:
    """Set this process's read deadlines (seconds; 0 = none) for new connections, and
    what to call with the reason each time the protocol answers or closes a connection
    itself (``Metrics.connections_cut``: the app's request metrics never see these)."""
    DeadlineProtocol.header_timeout_s = header_timeout_s
    DeadlineProtocol.body_timeout_s = body_timeout_s
    DeadlineProtocol.cut_hooks = () if on_cut is None else (on_cut,)


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a head deadline, a body deadline, a cap on the
    head's size, its own refusals in the service's error shape, and a count of each
    connection it answers or closes itself."""

    header_timeout_s: ClassVar[float] = 10.0
    body_timeout_s: ClassVar[float] = 60.0
    # called with the reason of every connection the protocol answers or closes itself
    # (a tuple: a function stored as a class attribute would be bound as a method)
    cut_hooks: ClassVar[tuple[Callable[[str], None], ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting: Waiting | None = None
        self._in_head = False  # a request head has begun and is not complete
        self._in_body = False  # a request's head is complete and its body is not
        self._head_bytes = 0  # read while the head was incomplete (an upper bound)
        self._too_large = False  # the head is over MAX_HEAD_BYTES: answer 431, not 400

    # The parser's callbacks: where a request's head and body begin and end.
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0

    def on_headers_complete(self) -> None:
        self._in_head, self._in_body = False, True
        method = self.parser.get_method()
        size = len(method) + len(self.url) + 12  # "M URL HTTP/1.1\r\n" and the blank line
        size += sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > MAX_HEAD_BYTES:  # the parser stops with an error: send_400_response
            self._too_large = True
            raise ValueError(f"a request head of {size} bytes")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        """A request over the connection cap: uvicorn's app for it, which answers in plain
        text, is swapped for one in the error shape, and the refusal is counted."""
        busy = app is service_unavailable
        if busy:
            self._count("too_many_connections")
        super()._start_asgi_task(cycle, _too_many_connections if busy else app)

    # uvicorn's hooks: after each, put the deadline of the read state in place.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # cut off: nothing more is parsed
        self._feed(data)
        if self.transport.is_closing():
            return  # refused by the parser: answered and closed
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._too_large = True
        if self._too_large:
            self.send_400_response("")
            return
        self._arm()

    def _feed(self, data: bytes) -> None:
        """uvicorn's ``data_received``, less its warning "Invalid HTTP request received."
        for every error of the parser: a head over the limit is refused from a callback
        by raising, and was logged as invalid HTTP before its 431. The refusal's own log
        line (``_close_with``) says which it was, with the parser's reason."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.send_400_response(str(exc))
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def send_400_response(self, msg: str) -> None:
        """The answer to a request the parser refused, in the service's error shape
        (uvicorn's own is a line of plain text): 431 for a head too large, else 400."""
        if self.transport.is_closing():
            return
        if self._too_large:
            why = f"its head is over {MAX_HEAD_BYTES} bytes"
            self._close_with(TOO_LARGE, why, "head_too_large")
        else:
            self._close_with(INVALID, f"its request is not valid HTTP ({msg})", "invalid_http")

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _want(self) -> Waiting | None:
        """What the connection waits for; None while the app works on a request (its
        response not sent yet, or a pipelined request queued behind it)."""
        if self.pipeline:
            return None
        if self._in_body:
            return "body"
        if self.cycle is not None and not self.cycle.response_complete:
            return None
        return "head"

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
        seconds = self.header_timeout_s if what == "head" else self.body_timeout_s
        why = f"the request {what} did not arrive within {seconds:.0f} s"
        cycle = self.cycle if what == "body" else None
        if what == "head" and not self._in_head:
            self._close_with(None, why, "idle")  # nothing of a request arrived
        elif cycle is not None and cycle.response_started:
            self._close_with(None, why, "body_timeout")  # answered early, body unread
        else:
            self._close_with(TIMEOUT, why, f"{what}_timeout")
        if cycle is not None:  # the app's receive() now reports a disconnect
            cycle.disconnected = True
            cycle.message_event.set()

    def _close_with(self, answer: bytes | None, why: str, reason: str) -> None:
        """Send ``answer`` (if any) and close the connection, saying why in the log and
        counting ``reason``."""
        self._count(reason)
        self._cancel()
        if answer is not None:
            self.transport.write(answer)
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "client"
        self.logger.info("%s: closed because %s", client, why)
        self.transport.close()

    def _count(self, reason: str) -> None:
        for hook in self.cut_hooks:
            hook(reason)
