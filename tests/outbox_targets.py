"""Real delivery targets on 127.0.0.1 for the outbox tests (plain helpers, no fixtures).

- ``Receiver``: an HTTP server (``http.server`` in a thread) that records every POST
  (headers, raw body) and answers the statuses it is told to (``script``, then 200), or
  holds its answer until ``release`` is set (a receiver slower than the sender's
  timeout). Not started, its port is closed: connection refused.
- ``Mailbox``: an aiosmtpd ``Controller`` (a real SMTP server) keeping every message.
"""

from __future__ import annotations

import email
import json
import threading
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from tests.live import free_port

HOLD_LIMIT_S = 20.0  # a held answer is released by the test, or by this bound


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event_id(self) -> str:
        return self.headers["X-ReturnLens-Event-Id"]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    script: list[int] = field(default_factory=list)  # statuses to answer first
    hold: bool = False  # keep the answer until ``release`` is set
    requests: list[Received] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)  # statuses actually sent
    release: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/returnlens"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(Received(dict(self.headers.items()), body))
                if receiver.hold:
                    receiver.release.wait(HOLD_LIMIT_S)
                status = receiver.script.pop(0) if receiver.script else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                    receiver.answered.append(status)
                except OSError:  # the sender gave up waiting and closed the connection
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def event_ids(self) -> list[str]:
        return [r.event_id for r in self.requests]


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        self.box.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(raw)))
        return "250 Message accepted for delivery"


class Mailbox:
    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[tuple[list[str], Message]] = []
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> Mailbox:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
