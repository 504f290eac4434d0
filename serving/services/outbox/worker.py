"""The dispatcher thread that runs inside each service process (and ``outbox dispatch``).

One daemon thread per process calls ``Dispatcher.dispatch_once`` in a loop: straight
again while a pass was full (more may be due), otherwise it sleeps up to
``poll_s`` or until an ``emit`` in this process commits (``events.add_waker``). Several
processes each run one; their claims keep them from sending anything twice. A failing
database is logged and retried at the next poll, never raised into the service. ``stop``
wakes the thread and waits for the send in flight, which its timeouts bound.
"""

from __future__ import annotations

import logging
import threading

from serving.services.outbox.dispatch import Dispatcher
from serving.services.outbox.events import add_waker, remove_waker

log = logging.getLogger("returnlens.outbox")


class OutboxWorker:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="returnlens-outbox", daemon=True)

    def start(self) -> OutboxWorker:
        add_waker(self._wake)
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def run_forever(self) -> None:
        """The loop in the calling thread (the CLI); returns after ``stop``."""
        add_waker(self._wake)
        self._loop()

    def _loop(self) -> None:
        config = self.dispatcher.config
        while not self._stop.is_set():
            self._wake.clear()
            try:
                report = self.dispatcher.dispatch_once()
            except Exception:  # database down, ...: try again at the next poll
                log.exception("outbox dispatch pass failed; retrying in %.0f s", config.poll_s)
                report = None
            if report is not None and report.handled >= config.batch:
                continue  # a full pass: more may be due
            self._wake.wait(config.poll_s)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop after the send in flight; True when the thread ended within ``timeout``."""
        self._stop.set()
        self._wake.set()
        remove_waker(self._wake)
        if self._thread.is_alive():
            self._thread.join(timeout if timeout is not None else self.dispatcher.config.lease_s)
        ended = not self._thread.is_alive()
        if ended:  # else the send in flight still uses the HTTP client
            self.dispatcher.close()
        return ended
