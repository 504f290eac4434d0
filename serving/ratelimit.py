"""In-process token buckets per credential and per client IP, answering 429 when empty.

A bucket holds up to ``burst`` tokens and refills at ``rate_per_minute / 60`` tokens per
second; each request takes one token from the IP bucket and, when it carries a
credential, one from that credential's bucket (keyed by a hash, so no plaintext key is
held in memory). Memory is bounded: buckets are kept in LRU order, a bucket that has
been idle long enough to be full again is indistinguishable from a new one and is
dropped, and the table never holds more than ``max_buckets`` entries.

Limits are per process: with N uvicorn workers a client can get up to N times the rate.
A shared limiter (Redis, the proxy in front) is the answer for strict global limits.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.credentials import credential_of, secret_hash
from serving.errors import error_response

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """Token buckets keyed by any string. Thread-safe; ``clock`` is injectable for tests."""

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        *,
        max_buckets: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or rate_per_minute < 0:
            raise ValueError("burst must be >= 1 and rate_per_minute >= 0")
        self.rate = rate_per_minute / 60.0  # tokens per second
        self.burst = float(burst)
        self.max_buckets = max_buckets
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: str) -> float:
        """Take one token for ``key``. Returns 0.0 when allowed, otherwise the seconds
        until a token is available (nothing is taken then)."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.pop(key, None)
            if bucket is None:
                bucket = _Bucket(tokens=self.burst, updated=now)
            else:
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
                bucket.updated = now
            self._buckets[key] = bucket  # most recently used at the end
            self._evict(now)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def _evict(self, now: float) -> None:
        """Drop buckets idle long enough to have refilled, then the LRU ones over the cap."""
        refill_seconds = self.burst / self.rate
        while self._buckets:
            key, oldest = next(iter(self._buckets.items()))
            if len(self._buckets) > self.max_buckets or now - oldest.updated >= refill_seconds:
                del self._buckets[key]
            else:
                break


class RateLimitMiddleware:
    """Pure ASGI middleware: one token per request from the IP and credential buckets."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_ip: TokenBucketLimiter,
        per_key: TokenBucketLimiter,
        on_limited: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.per_ip = per_ip
        self.per_key = per_key
        self.on_limited = on_limited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        wait = self.per_ip.acquire(f"ip:{ip}")
        which = "ip"
        credential = credential_of(Headers(scope=scope))
        if wait == 0.0 and credential:
            wait = self.per_key.acquire(f"key:{secret_hash(credential)[:32]}")
            which = "key"
        if wait > 0.0:
            if self.on_limited:
                self.on_limited(which)
            retry = max(1, math.ceil(wait))
            response = error_response(
                429,
                "rate_limited",
                f"too many requests from this {'API key' if which == 'key' else 'address'}; "
                f"retry in {retry} s",
                {"scope": which, "retry_after_s": retry},
                {"Retry-After": str(retry)},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
