"""The delivery worker: posts spooled inspections to the service until each is answered.

Verdicts on the answer to one POST:

* 2xx (201 created, 200 replay of the same idempotency key): ``delivered``.
* no answer (connection refused, timeout), 5xx, 408, 429, 401/403 (a station credential
  problem, not a problem with the inspection) and 409 other than ``idempotency_conflict``:
  **retry**. The worker then holds *all* deliveries: the API is away, hammering it helps
  no one.
* any other 4xx (the request itself is refused: 413, 415, 422, 409
  ``idempotency_conflict``): ``failed``, logged and kept in the spool.

How long a retry holds: a "full jitter" draw, uniform in ``[0, min(maximum, initial *
factor**n)]`` after the n-th consecutive failure (:meth:`Backoff.full_jitter`), so a
fleet of stations that lost the API together does not come back in lockstep. When the
answer carries ``Retry-After`` (delay-seconds or an HTTP-date, read against the
answer's own ``Date`` so a station with a wrong clock still waits the asked time), the
hold is at least that long, up to :data:`RETRY_AFTER_CAP_S`: a longer ask is more likely
a misconfigured proxy than a planned outage, and nothing is lost by asking again then
(the rows wait in the durable spool).

The clock, the wall clock and the random source are injected, so tests drive the
schedule without sleeping and with a seeded generator.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from serving.dock.source import Backoff
from serving.dock.spool import Spool, SpoolItem

log = logging.getLogger("returnlens.dock")
RETRY_STATUSES = frozenset({401, 403, 408, 409, 429})
RETRY_AFTER_CAP_S = 300.0  # the longest Retry-After honoured (5 minutes); see above


@dataclass(frozen=True)
class PostOutcome:
    status: int | None  # None: no HTTP answer at all
    body: dict[str, Any] | None = None
    error: str = ""
    retry_after: float | None = None


class Poster(Protocol):
    def post(self, item: SpoolItem) -> PostOutcome: ...


def verdict(outcome: PostOutcome) -> str:
    """delivered | retry | failed for one answer (see the module docstring)."""
    status = outcome.status
    if status is None or status >= 500:
        return "retry"
    if 200 <= status < 300:
        return "delivered"
    if status == 409 and (outcome.body or {}).get("code") == "idempotency_conflict":
        return "failed"
    return "retry" if status in RETRY_STATUSES else "failed"


class HttpPoster:
    """POST /v1/dock/inspections as multipart with httpx."""

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: float = 30.0,
        transport: Any = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        import httpx

        self._httpx = httpx
        self.client = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )
        self.key = key
        self.wall_clock = wall_clock

    def close(self) -> None:
        self.client.close()

    def post(self, item: SpoolItem) -> PostOutcome:
        files = [
            ("photos", (f"frame{i}.jpg", data, "image/jpeg")) for i, data in enumerate(item.frames)
        ]
        data = {"station_id": item.station_id}
        if item.return_id:
            data["return_id"] = item.return_id
        headers = {"Idempotency-Key": item.key, "Authorization": f"Bearer {self.key}"}
        try:
            resp = self.client.post("/v1/dock/inspections", files=files, data=data, headers=headers)
        except self._httpx.HTTPError as exc:
            return PostOutcome(None, error=f"{type(exc).__name__}: {exc}")
        try:
            body = resp.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else None
        return PostOutcome(
            resp.status_code,
            body,
            error="" if resp.is_success else f"HTTP {resp.status_code}: {resp.text[:300]}",
            retry_after=parse_retry_after(
                resp.headers.get("retry-after"),
                now=_http_date(resp.headers.get("date")) or self.wall_clock(),
            ),
        )


class FailoverPoster:
    """Several API replicas behind one poster: a post that gets no answer, or a 5xx,
    goes to the next replica at once (the same idempotency key, so a replica that did
    store it before dying answers the retry from its shared database as a replay). The
    replica that answered is tried first next time; the Deliverer's backoff starts only
    when every replica failed."""

    def __init__(self, posters: list[HttpPoster]) -> None:
        if not posters:
            raise ValueError("FailoverPoster needs at least one poster")
        self.posters = posters
        self.current = 0

    def post(self, item: SpoolItem) -> PostOutcome:
        outcome = PostOutcome(None, error="no replica tried")
        for step in range(len(self.posters)):
            index = (self.current + step) % len(self.posters)
            outcome = self.posters[index].post(item)
            if outcome.status is not None and outcome.status < 500:
                self.current = index
                return outcome
            log.warning(
                "replica %d of %d did not take %s: %s",
                index + 1,
                len(self.posters),
                item.key,
                outcome.error or outcome.status,
            )
        return outcome

    def close(self) -> None:
        for poster in self.posters:
            poster.close()


def _http_date(value: str | None) -> datetime | None:
    """An HTTP-date (RFC 9110 IMF-fixdate, or the obsolete forms) as an aware datetime."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # "-0000": UTC


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` value asks to wait, from ``now``; None when unreadable.

    Both forms of RFC 9110 section 10.2.3: delay-seconds (``"120"``; a decimal is read
    too) and an HTTP-date (``"Wed, 21 Oct 2026 07:28:00 GMT"``). A date in the past or a
    negative number means "now" (0). No cap here: :class:`Deliverer` applies it.
    """
    if not value or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        when = _http_date(value)
        if when is None:
            return None
        seconds = (when - now).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


Delivered = Callable[[SpoolItem, dict[str, Any], int], None]
EventFn = Callable[..., None]


class Deliverer:
    """Sends pending rows oldest first; one background thread, or driven by hand in tests."""

    def __init__(
        self,
        spool: Spool,
        poster: Poster,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_delivered: Delivered | None = None,
        on_event: EventFn | None = None,
        batch: int = 8,
        rng: random.Random | None = None,
        retry_after_cap: float = RETRY_AFTER_CAP_S,
    ) -> None:
        self.spool = spool
        self.poster = poster
        self.backoff = backoff or Backoff(initial=1.0, factor=2.0, maximum=60.0)
        self.clock = clock
        self.rng = rng or random.Random()  # seeded from the OS: stations draw differently
        self.retry_after_cap = retry_after_cap
        self.on_delivered = on_delivered
        self.on_event = on_event or (lambda kind, **fields: None)
        self.batch = batch
        self.hold_until = 0.0
        self.failures = 0  # consecutive retryable failures (the backoff exponent)
        self.delays: list[float] = []  # every hold, in order (observable schedule)
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def deliver_due(self) -> int:
        """One pass over pending rows unless holding; returns how many were delivered."""
        if self.clock() < self.hold_until:
            return 0
        delivered = 0
        while True:
            items = self.spool.pending(self.batch)
            if not items:
                return delivered
            for item in items:
                outcome = self.poster.post(item)
                kind = verdict(outcome)
                if kind == "delivered":
                    self._delivered(item, outcome)
                    delivered += 1
                elif kind == "failed":
                    self.spool.mark_failed(item.key, outcome.status, outcome.error)
                    log.error("inspection %s refused by the service: %s", item.key, outcome.error)
                    self.on_event(
                        "delivery_failed", key=item.key, status=outcome.status, error=outcome.error
                    )
                else:
                    self._hold(item, outcome)
                    return delivered

    def _delivered(self, item: SpoolItem, outcome: PostOutcome) -> None:
        body = outcome.body or {}
        self.spool.mark_delivered(item.key, int(outcome.status or 0), body)
        self.failures = 0
        self.on_event(
            "delivered",
            key=item.key,
            status=outcome.status,
            inspection_id=body.get("inspection_id"),
            replay=outcome.status == 200,
        )
        if self.on_delivered is not None:
            try:
                self.on_delivered(item, body, int(outcome.status or 0))
            except Exception:  # output must never stop delivery
                log.exception("output for inspection %s failed", item.key)

    def _hold(self, item: SpoolItem, outcome: PostOutcome) -> None:
        self.spool.note_attempt(item.key, outcome.status, outcome.error)
        delay = self.backoff.full_jitter(self.failures, self.rng)
        if outcome.retry_after is not None:  # the service asked: at least that, up to the cap
            delay = max(delay, min(outcome.retry_after, self.retry_after_cap))
        self.failures += 1
        self.delays.append(delay)
        self.hold_until = self.clock() + delay
        self.on_event(
            "delivery_retry",
            key=item.key,
            status=outcome.status,
            error=outcome.error,
            retry_in_s=delay,
        )

    # background thread ---------------------------------------------------------------

    def kick(self) -> None:
        self._kick.set()

    def start(self) -> Deliverer:
        self._thread = threading.Thread(target=self._run, name="dock-deliver", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
            except Exception:  # a broken spool file must not kill the station silently
                log.exception("delivery pass failed")
                self.hold_until = self.clock() + self.backoff.maximum
            wait = (
                max(0.05, self.hold_until - self.clock()) if self.hold_until > self.clock() else 5.0
            )
            self._kick.wait(wait)
            self._kick.clear()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def drain(self, timeout: float, sleep: Callable[[float], object] = time.sleep) -> bool:
        """Deliver what is pending within ``timeout`` seconds (call after :meth:`stop`)."""
        deadline = self.clock() + timeout
        while self.spool.counts()["pending"]:
            self.deliver_due()
            if not self.spool.counts()["pending"]:
                break
            now = self.clock()
            if now >= deadline:
                return False
            sleep(max(0.01, min(self.hold_until - now, deadline - now)))
        return True
