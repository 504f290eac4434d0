"""Rate limits per credential and per client IP, shared by every worker and replica.

The counting is the ``limits`` library's sliding-window counter on a shared storage
(``RETURNLENS_RATE_LIMIT_STORAGE``): ``database`` (the default: the application's own
SQLite file or PostgreSQL, ``serving.storage.ratelimit_store``), ``redis://host:port``,
or ``memory://`` (one process only). Every process that shares the storage shares the
limits: one client gets the configured rate whichever worker or replica answers it.

A rule is "``rate`` requests per minute with bursts of ``burst``". It becomes one
``limits`` item: ``burst`` requests per ``burst / rate`` minutes. A client may send
``burst`` requests at once; after that the previous window's weight decays linearly, so
requests are allowed again at ``rate`` per minute, as a token bucket refills. The
sliding-window counter keeps two counters per key (one upsert per hit) where a moving
window would store every request's timestamp, and it does not allow the double burst
of fixed windows at a window's edge.

Each request takes one hit from the address's rule and, when it carries a credential,
one from that credential's (keyed by a hash: no plaintext key is stored); a refused
request answers 429 ``rate_limited`` with ``Retry-After``. Probes and ``/metrics`` are
never limited. A storage that fails (database locked past its timeout, Redis down or not
answering within ``REDIS_TIMEOUT_S``) lets the request through and logs it: the limiter
must not take the service down, nor hold a request while its storage hangs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.credentials import credential_of, secret_hash
from serving.errors import error_response

log = logging.getLogger("returnlens.ratelimit")
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
NAMESPACE = "rl"
ERROR_LOG_EVERY_S = 60.0  # a storage outage is logged at most this often per process


def rule(rate_per_minute: float, burst: int) -> RateLimitItem | None:
    """``rate`` per minute with bursts of ``burst``: ``burst`` per ``burst/rate`` minutes
    (None: the rule is off)."""
    if burst < 1 or rate_per_minute < 0:
        raise ValueError("burst must be >= 1 and rate_per_minute >= 0")
    if rate_per_minute == 0:
        return None
    window_s = max(1, round(burst * 60.0 / rate_per_minute))
    return RateLimitItemPerSecond(burst, window_s, namespace=NAMESPACE)


# Seconds a Redis connect or reply may take: redis-py waits for ever by default, so a
# Redis that accepts connections but stops answering (paused, swapping, a half-open
# network path) would hold every request's thread. Past it the hit fails and the request
# is let through like any other storage failure. A URI's own ``socket_timeout`` /
# ``socket_connect_timeout`` query parameters win.
REDIS_TIMEOUT_S = 1.0
_REDIS_TIMEOUTS = ("socket_timeout", "socket_connect_timeout")


def open_storage(uri: str) -> Storage:
    """A ``limits`` storage from its URI (``memory://``, ``redis://host:port``, ...);
    a Redis one with ``REDIS_TIMEOUT_S`` socket timeouts unless the URI sets them."""
    options: dict[str, float] = {}
    parts = urlsplit(uri)
    if parts.scheme in ("redis", "rediss", "redis+unix"):
        given = parse_qs(parts.query)
        options = {name: REDIS_TIMEOUT_S for name in _REDIS_TIMEOUTS if name not in given}
    storage = storage_from_string(uri, **options)
    if not isinstance(storage, Storage):  # an async+ scheme
        raise ValueError(f"rate limit storage {uri!r} is not a synchronous storage")
    return storage


@dataclass(frozen=True)
class Refusal:
    scope: str  # "ip" | "key"
    retry_after_s: int


class RateLimiter:
    """The address and credential rules on one shared storage."""

    def __init__(
        self,
        storage: Storage,
        *,
        per_ip: RateLimitItem | None,
        per_key: RateLimitItem | None,
    ) -> None:
        self.storage = storage
        self.strategy = SlidingWindowCounterRateLimiter(storage)
        self.per_ip = per_ip
        self.per_key = per_key
        # An in-memory storage answers at once; any other one is I/O, run off the loop.
        self.blocking = not isinstance(storage, MemoryStorage)
        self._next_error_log = 0.0

    @property
    def enabled(self) -> bool:
        return self.per_ip is not None or self.per_key is not None

    def check(self, ip: str, credential_hash: str | None) -> Refusal | None:
        """Take one hit from each rule that applies; the first refusal, or None."""
        hits: list[tuple[str, RateLimitItem, str]] = []
        if self.per_ip is not None:
            hits.append(("ip", self.per_ip, f"ip:{ip}"))
        if self.per_key is not None and credential_hash:
            hits.append(("key", self.per_key, f"key:{credential_hash}"))
        if not hits:
            return None
        batch: Any = getattr(self.storage, "batch", None)  # one transaction (database)
        try:
            with batch() if batch is not None else contextlib.nullcontext():
                for scope, item, identity in hits:
                    if not self.strategy.hit(item, identity):
                        stats = self.strategy.get_window_stats(item, identity)
                        wait = stats.reset_time - time.time()  # limits' clock
                        return Refusal(scope, max(1, math.ceil(wait)))
        except Exception:
            now = time.monotonic()
            if now >= self._next_error_log:
                self._next_error_log = now + ERROR_LOG_EVERY_S
                log.exception("rate limit storage failed: requests are let through")
        return None


class RateLimitMiddleware:
    """Pure ASGI middleware: one hit per request from the IP and credential rules."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        on_limited: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.on_limited = on_limited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS or not self.limiter.enabled:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        credential = credential_of(Headers(scope=scope))
        key = secret_hash(credential)[:32] if credential else None
        if self.limiter.blocking:
            refusal = await anyio.to_thread.run_sync(self.limiter.check, ip, key)
        else:
            refusal = self.limiter.check(ip, key)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        if self.on_limited:
            self.on_limited(refusal.scope)
        retry = refusal.retry_after_s
        response = error_response(
            429,
            "rate_limited",
            f"too many requests from this {'API key' if refusal.scope == 'key' else 'address'}; "
            f"retry in {retry} s",
            {"scope": refusal.scope, "retry_after_s": retry},
            {"Retry-After": str(retry)},
        )
        await response(scope, receive, send)
