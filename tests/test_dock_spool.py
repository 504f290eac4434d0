"""The dock spool + delivery worker against a real HTTP server on 127.0.0.1.

The server is a tiny stdlib ``http.server`` in a thread that can answer 503, 201, a
dropped connection, 422 or 429, and that stores each idempotency key once (a repeated key
is answered 200 with the stored id, as the service does). The clock is injected: the
backoff schedule is checked without sleeping, and the jitter comes from a seeded
``random.Random``. ``Retry-After`` in its HTTP-date form is tested through httpx's
``MockTransport``, which lets the test set the answer's ``Date`` header exactly.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.dock.deliver import (
    RETRY_AFTER_CAP_S,
    Deliverer,
    HttpPoster,
    PostOutcome,
    parse_retry_after,
    verdict,
)
from serving.dock.source import Backoff
from serving.dock.spool import Spool, SpoolItem


class FakeService:
    def __init__(self) -> None:
        self.mode = "503"  # 503 | 201 | drop | 422 | 429
        self.stored: dict[str, str] = {}  # idempotency key -> inspection id
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length", "0"))
        body = h.rfile.read(length)
        key = h.headers.get("idempotency-key", "")
        with self.lock:
            self.requests.append(
                {
                    "key": key,
                    "auth": h.headers.get("authorization"),
                    "photos": body.count(b'name="photos"'),
                    "return_id": b'name="return_id"' in body,
                    "mode": self.mode,
                }
            )
            mode = self.mode
            if mode in ("201", "drop") and key not in self.stored:
                self.stored[key] = f"insp-{len(self.stored) + 1}"
                status = 201
            elif mode in ("201", "drop"):
                status = 200
            else:
                status = int(mode)
        if mode == "drop":  # stored, but the answer never reaches the station
            h.close_connection = True
            h.wfile.flush()
            h.connection.shutdown(2)
            return
        payload = (
            {
                "inspection_id": self.stored[key],
                "grade": "C_good",
                "tier": "T2",
                "channel": "open_box",
            }
            if status < 300
            else {"code": "invalid_field", "message": "no", "details": {}}
        )
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(data)))
        if status == 429:
            h.send_header("retry-after", "7")
        h.end_headers()
        h.wfile.write(data)


@pytest.fixture()
def service() -> Iterator[tuple[FakeService, str]]:
    fake = FakeService()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            fake.handle(self)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _item(n: int, return_id: str | None = "R-1") -> SpoolItem:
    return SpoolItem(
        key=f"key-{n}",
        station_id="dock-t",
        return_id=return_id,
        id_source="qr",
        frames=(b"\xff\xd8jpeg-a" + bytes([n]), b"\xff\xd8jpeg-b"),
        created_at=100.0 + n,
        meta={"frame_index": n},
    )


SEED = 1234
BACKOFF = Backoff(initial=1.0, factor=2.0, maximum=4.0)


def _deliverer(spool: Spool, url: str, clock: Clock, **kw: Any) -> tuple[Deliverer, list[str]]:
    seen: list[str] = []
    d = Deliverer(
        spool,
        HttpPoster(url, "dock-secret", timeout=5.0),
        backoff=BACKOFF,
        clock=clock,
        rng=random.Random(SEED),
        on_delivered=lambda item, body, status: seen.append(body["inspection_id"]),
        **kw,
    )
    return d, seen


def test_pending_while_503_then_delivered_once_with_capped_backoff(
    service: tuple[FakeService, str], tmp_path: Path
) -> None:
    fake, url = service
    clock = Clock()
    spool = Spool(tmp_path / "spool.db", clock=clock)
    spool.add(_item(1))
    spool.add(_item(2, return_id=None))
    spool.add(_item(1))  # same key again: ignored, not a second inspection
    d, seen = _deliverer(spool, url, clock)

    same_draws = random.Random(SEED)
    for ceiling in (1.0, 2.0, 4.0, 4.0):  # doubling, capped at 4 s; full jitter below it
        assert d.deliver_due() == 0
        assert d.delays[-1] == same_draws.uniform(0.0, ceiling)
        assert 0.0 < d.delays[-1] <= ceiling
        before = len(fake.requests)
        assert d.deliver_due() == 0  # holding: no request before the backoff has passed
        assert len(fake.requests) == before
        clock.now += d.delays[-1]
    assert spool.counts()["pending"] == 2
    assert spool.get("key-1").attempts == 4  # type: ignore[union-attr]

    fake.mode = "201"
    assert d.deliver_due() == 2
    assert spool.counts() == {"pending": 0, "delivered": 2, "failed": 0, "delivered-local": 0}
    assert sorted(seen) == ["insp-1", "insp-2"]
    assert sorted(fake.stored) == ["key-1", "key-2"]
    ok = [r for r in fake.requests if r["mode"] == "201"]
    assert [r["key"] for r in ok] == ["key-1", "key-2"]  # oldest first, each once
    assert ok[0]["auth"] == "Bearer dock-secret" and ok[0]["photos"] == 2
    assert ok[0]["return_id"] and not ok[1]["return_id"]  # unmatched: no return id sent
    assert spool.result("key-1")["inspection_id"] == "insp-1"  # type: ignore[index]
    assert spool.get("key-1").frames == ()  # type: ignore[union-attr]  # dropped once delivered
    assert d.deliver_due() == 0 and len(fake.requests) == len(ok) + 4


def test_restart_resends_pending_rows_and_a_lost_answer_is_not_a_duplicate(
    service: tuple[FakeService, str], tmp_path: Path
) -> None:
    fake, url = service
    clock = Clock()
    first = Spool(tmp_path / "spool.db", clock=clock)
    for n in (1, 2, 3):
        first.add(_item(n))
    fake.mode = "drop"  # the service stores key-1 but the answer is lost
    d1, _ = _deliverer(first, url, clock)
    assert d1.deliver_due() == 0
    assert fake.stored == {"key-1": "insp-1"}
    first.close()  # the station "crashes" here with three rows pending

    fake.mode = "201"
    second = Spool(tmp_path / "spool.db", clock=clock)
    assert second.counts()["pending"] == 3
    d2, seen = _deliverer(second, url, clock)
    assert d2.deliver_due() == 3
    assert seen == ["insp-1", "insp-2", "insp-3"]  # key-1 answered from the stored result
    assert fake.stored == {"key-1": "insp-1", "key-2": "insp-2", "key-3": "insp-3"}
    statuses = [r for r in fake.requests if r["key"] == "key-1"]
    assert len(statuses) == 2 and second.counts()["delivered"] == 3


def test_refused_request_fails_and_is_kept_then_requeued(
    service: tuple[FakeService, str], tmp_path: Path
) -> None:
    fake, url = service
    clock = Clock()
    spool = Spool(tmp_path / "spool.db", clock=clock)
    spool.add(_item(1))
    spool.add(_item(2))
    events: list[str] = []
    d, _ = _deliverer(spool, url, clock, on_event=lambda kind, **f: events.append(kind))
    fake.mode = "422"
    assert d.deliver_due() == 0
    assert spool.counts()["failed"] == 2 and d.delays == []  # no backoff for refusals
    assert events.count("delivery_failed") == 2
    assert spool.get("key-1").frames  # type: ignore[union-attr]  # kept for a later retry
    assert spool.requeue_failed() == 2
    fake.mode = "201"
    assert d.deliver_due() == 2 and spool.counts()["delivered"] == 2


def test_429_honours_retry_after_and_no_server_is_a_retry(
    service: tuple[FakeService, str], tmp_path: Path
) -> None:
    fake, url = service
    clock = Clock()
    spool = Spool(tmp_path / "spool.db", clock=clock)
    spool.add(_item(1))
    d, _ = _deliverer(spool, url, clock)
    fake.mode = "429"
    d.deliver_due()
    assert d.delays == [7.0]  # Retry-After: 7 asked, above the backoff maximum, under the cap
    # Nothing listens on this port: a connection error is retried, not failed.
    dead, _ = _deliverer(spool, "http://127.0.0.1:9", clock)
    assert dead.deliver_due() == 0 and len(dead.delays) == 1
    assert 0.0 <= dead.delays[0] <= BACKOFF.initial
    assert spool.counts()["pending"] == 1


SERVER_NOW = "Wed, 02 Dec 2026 07:00:00 GMT"


def _answer_429(tmp_path: Path, headers: dict[str, str], **kw: Any) -> Deliverer:
    """One delivery answered 429 with ``headers``, through the real HttpPoster."""
    transport = httpx.MockTransport(lambda request: httpx.Response(429, headers=headers))
    spool = Spool(tmp_path / "spool.db", clock=Clock())
    spool.add(_item(1))
    d = Deliverer(
        spool,
        HttpPoster("http://dock-api.test", "k", transport=transport, **kw),
        backoff=BACKOFF,
        clock=Clock(),
        rng=random.Random(SEED),
    )
    assert d.deliver_due() == 0
    spool.close()
    return d


def test_retry_after_as_an_http_date_is_read_against_the_answers_date(tmp_path: Path) -> None:
    d = _answer_429(tmp_path, {"date": SERVER_NOW, "retry-after": "Wed, 02 Dec 2026 07:00:42 GMT"})
    assert d.delays == [42.0]  # the station's own clock (years off here) plays no part


def test_retry_after_date_without_a_date_header_uses_the_wall_clock(tmp_path: Path) -> None:
    d = _answer_429(
        tmp_path,
        {"retry-after": "Wed, 02 Dec 2026 07:01:30 GMT"},
        wall_clock=lambda: datetime(2026, 12, 2, 7, 0, 0, tzinfo=UTC),
    )
    assert d.delays == [90.0]


@pytest.mark.parametrize(
    "asked", [str(int(RETRY_AFTER_CAP_S) * 12), "Thu, 03 Dec 2026 07:00:00 GMT"]
)
def test_retry_after_above_the_cap_is_clamped_to_the_cap(tmp_path: Path, asked: str) -> None:
    d = _answer_429(tmp_path, {"date": SERVER_NOW, "retry-after": asked})
    assert d.delays == [RETRY_AFTER_CAP_S]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("Wed, 02 Dec 2026 07:00:30 GMT", 30.0),  # IMF-fixdate
        ("Wednesday, 02-Dec-26 07:00:30 GMT", 30.0),  # obsolete RFC 850 form
        ("Wed Dec  2 07:00:30 2026", 30.0),  # obsolete asctime form (no zone: GMT)
        ("Wed, 02 Dec 2026 06:59:00 GMT", 0.0),  # already past: go now
        ("soon", None),
        ("inf", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    now = datetime(2026, 12, 2, 7, 0, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == seconds


class AlwaysDown:
    def post(self, item: SpoolItem) -> PostOutcome:
        return PostOutcome(503, error="HTTP 503")


def _schedule(tmp_path: Path, seed: int, failures: int) -> list[float]:
    clock = Clock()
    spool = Spool(tmp_path / f"spool-{seed}.db", clock=clock)
    spool.add(_item(1))
    d = Deliverer(spool, AlwaysDown(), backoff=BACKOFF, clock=clock, rng=random.Random(seed))
    for _ in range(failures):
        assert d.deliver_due() == 0
        clock.now += d.delays[-1]
    spool.close()
    return d.delays


def test_jittered_backoff_stays_within_its_bounds_and_is_reproducible(tmp_path: Path) -> None:
    delays = _schedule(tmp_path, SEED, 12)
    ceilings = [BACKOFF.delay(n) for n in range(12)]  # 1, 2, 4, 4, ...
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert _schedule(tmp_path, SEED, 12) == delays  # same seed, same schedule
    assert _schedule(tmp_path, SEED + 1, 12) != delays  # stations draw differently
    draws = [BACKOFF.full_jitter(5, random.Random(n)) for n in range(400)]
    assert 0.0 <= min(draws) < 0.25 * BACKOFF.maximum  # spread over the whole window,
    assert 0.75 * BACKOFF.maximum < max(draws) <= BACKOFF.maximum  # not bunched at the top


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (201, {}, "delivered"),
        (200, {}, "delivered"),
        (None, None, "retry"),
        (503, None, "retry"),
        (500, None, "retry"),
        (408, None, "retry"),
        (429, None, "retry"),
        (401, None, "retry"),
        (409, {"code": "in_progress"}, "retry"),
        (409, {"code": "idempotency_conflict"}, "failed"),
        (422, None, "failed"),
        (413, None, "failed"),
        (415, None, "failed"),
        (404, None, "failed"),
    ],
)
def test_verdicts(status: int | None, body: dict[str, Any] | None, expected: str) -> None:
    assert verdict(PostOutcome(status, body)) == expected
