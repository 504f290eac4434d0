"""Upload admission: how many bytes of photo uploads one worker reads and holds at once.

A photo upload's bytes stay in memory from the moment its body is read until its answer
is sent (decode, gate, model, store all read them). Sixteen shoppers sending four 12 MP
photos each at once used to hold every body at the same time, read while earlier
requests were still grading: about 210 MB of upload bytes on top of the worker's own
memory (`returnlens bench`, issue 20). Admission bounds that: a photo upload reserves
its declared size (``Content-Length``; the route's body cap when a chunked body declares
none) *before* its body is read, and waits while the worker already holds
``upload_admission_bytes`` of reservations. While it waits, its body stays in the
client's socket: uvicorn stops reading a connection whose app has not asked for more
than 64 KiB of its body.

Slow clients. An admitted upload holds its reservation while its body trickles in, so
a client that declares a large body and sends it slowly keeps others waiting. Three
bounds keep that short and visible: the body read deadline (``body_timeout_s``,
``serving/deadlines.py``) closes a body that has not arrived in time, counted from the
request head; a waiting upload is answered ``503 uploads_busy`` with ``Retry-After``
after ``upload_admission_wait_s`` (shorter than the body deadline, so an upload admitted
late still has time for its body); and a reservation is the declared size, so a client
must declare (and is then held to, by the body cap) a large body to hold much. One
upload larger than the whole budget is admitted alone, once nothing else is held.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from starlette.requests import Request

from serving.errors import UploadsBusy

if TYPE_CHECKING:
    from vision.pipeline import Grader


class UploadAdmission:
    """Reservations of upload bytes against a per-process budget (module docstring).

    ``budget_bytes`` 0 turns admission off. Asyncio only: every caller runs on the
    worker's event loop (the condition is made again if the loop changes, as it does
    between test clients).
    """

    def __init__(self, budget_bytes: int, wait_s: float) -> None:
        self.budget = budget_bytes
        self.wait_s = wait_s
        self.held = 0  # bytes reserved by admitted uploads
        self.waiting = 0  # uploads waiting for admission
        self._cond: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _condition(self) -> asyncio.Condition:
        loop = asyncio.get_running_loop()
        if self._cond is None or self._loop is not loop:
            self._cond, self._loop = asyncio.Condition(), loop
        return self._cond

    def _fits(self, size: int) -> bool:
        return self.held == 0 or self.held + size <= self.budget

    @asynccontextmanager
    async def admit(self, size: int) -> AsyncIterator[None]:
        """Hold ``size`` bytes of the budget for the block; raise ``UploadsBusy`` after
        ``wait_s`` without room."""
        if self.budget <= 0:
            yield
            return
        size = max(0, size)
        cond = self._condition()
        async with cond:
            self.waiting += 1
            try:
                await asyncio.wait_for(cond.wait_for(lambda: self._fits(size)), self.wait_s)
            except TimeoutError:
                raise UploadsBusy(
                    "The service is busy with other photo uploads right now; "
                    "send the photos again in a few seconds.",
                    details={"waited_s": self.wait_s},
                ) from None
            finally:
                self.waiting -= 1
            self.held += size
        try:
            yield
        finally:
            async with cond:
                self.held -= size
                cond.notify_all()


def declared_size(request: Request, cap: int) -> int:
    """The body size an upload reserves: its ``Content-Length``, else (a chunked body)
    the route's cap, which the body limit enforces either way."""
    value = request.headers.get("content-length", "")
    return min(int(value), cap) if value.isdigit() else cap


@dataclass(frozen=True)
class UploadSlots:
    """Threads for the grading requests (uploads, inspections, reference photos), in two
    sets (``Settings.light_upload_slots``, ``heavy_upload_concurrency``).

    On a small box a worker grades fastest with about one request per core: each one
    beyond that only adds threads taking turns on the same cores (more GIL hand-offs,
    more photos in memory). But a request with a heavy photo (a 36 MP PNG) spends most of
    its time waiting for the heavy-decode thread, so it takes a slot of the other set:
    two clients sending pixel bombs never hold the slots a normal upload needs."""

    light: anyio.CapacityLimiter
    heavy: anyio.CapacityLimiter

    @classmethod
    def of(cls, light: int, heavy: int) -> UploadSlots:
        return cls(anyio.CapacityLimiter(light), anyio.CapacityLimiter(heavy))

    def pick(self, grader: Grader, photos: Iterable[bytes]) -> anyio.CapacityLimiter:
        """The set for a request with ``photos`` (read from their headers only)."""
        return self.heavy if any(grader.is_heavy(p) for p in photos) else self.light
