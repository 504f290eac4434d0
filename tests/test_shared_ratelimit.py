"""Rate limits shared by every worker and replica (serving/ratelimit.py).

Two real uvicorn replicas (two processes on two ports) share one storage: the
application database (SQLite file, PostgreSQL) or a real redis-server. A client that
alternates between them gets exactly the configured number of requests before its 429,
not twice it. The database storage's counting, weighting and expiry are checked with an
injected clock, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from serving.ratelimit import REDIS_TIMEOUT_S, RateLimiter, open_storage, rule
from serving.storage.db import Database
from serving.storage.ratelimit_store import FIXED, DatabaseStorage
from tests.live import clean_env, free_port, log_tail, start, stop, uvicorn_argv, wait_ready
from tests.ratelimits import mid_window_rate
from tests.requires import missing
from tests.shop import ADMIN_KEY

WINDOW = 60  # seconds, for the clocked storage tests
T0 = 1_000_000 * WINDOW + 15.0  # 15 s into a window


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    try:
        yield db
    finally:
        db.dispose()


# ----------------------------------------------------------------- the storage, clocked
def test_database_storage_counts_weights_and_expires(database: Database) -> None:
    clock = Clock(T0)
    storage = DatabaseStorage(database=database, clock=clock, cleanup_every_s=0)
    key = "rl/ip:1.2.3.4/3/60/second"
    hits = [storage.acquire_sliding_window_entry(key, 3, WINDOW) for _ in range(4)]
    assert hits == [True, True, True, False]
    # A refused hit is taken back: the count stays at the limit.
    assert storage.get_sliding_window(key, WINDOW) == (0, 0.0, 3, pytest.approx(105.0))
    assert not storage.acquire_sliding_window_entry("other", 3, WINDOW, amount=4)
    assert storage.acquire_sliding_window_entry("other", 3, WINDOW)  # keys are independent

    # The next window's edge: the previous 3 still weigh 3, nothing is allowed.
    clock.now = (T0 // WINDOW + 1) * WINDOW
    assert not storage.acquire_sliding_window_entry(key, 3, WINDOW)
    # 12 s into it they weigh 2.4: one request more, as a bucket refilling at 3/min.
    clock.now += 12
    assert storage.acquire_sliding_window_entry(key, 3, WINDOW)
    assert not storage.acquire_sliding_window_entry(key, 3, WINDOW)
    prev, prev_ttl, cur, _ = storage.get_sliding_window(key, WINDOW)
    assert (prev, cur) == (3, 1) and prev_ttl == pytest.approx(48.0)

    # Two windows later everything has expired, and the next hit deletes the old rows.
    clock.now += 2 * WINDOW
    assert storage.get_sliding_window(key, WINDOW)[::2] == (0, 0)
    assert storage.acquire_sliding_window_entry("fresh", 3, WINDOW)
    assert [(r["key"], r["count"]) for r in storage.rows()] == [("fresh", 1)]
    storage.clear("fresh")
    assert storage.rows() == []


def test_database_storage_fixed_window_and_reset(database: Database) -> None:
    clock = Clock(T0)
    storage = DatabaseStorage(database=database, clock=clock, cleanup_every_s=3600)
    assert [storage.incr("k", 10) for _ in range(3)] == [1, 2, 3]
    assert storage.get("k") == 3 and storage.get_expiry("k") == pytest.approx(T0 + 10)
    clock.now += 10  # expired: the next hit starts a new window
    assert storage.get("k") == 0
    assert storage.incr("k", 10, amount=2) == 2
    assert storage.get_expiry("k") == pytest.approx(T0 + 20)
    assert [r["window"] for r in storage.rows()] == [FIXED]
    assert storage.check() and storage.reset() == 1 and storage.rows() == []


def test_limiter_on_the_database_refuses_with_retry_after(database: Database) -> None:
    clock = Clock(T0)
    storage = DatabaseStorage(database=database, clock=clock)
    limiter = RateLimiter(storage, per_ip=rule(5, 5), per_key=rule(2, 2))  # 60 s windows
    assert [limiter.check("1.2.3.4", "abc") for _ in range(2)] == [None, None]
    refused = limiter.check("1.2.3.4", "abc")
    # the key's window ends in 45 s; the address has taken 3 of its 5
    assert refused is not None and refused.scope == "key"
    assert refused.retry_after_s in (45, 46)
    assert limiter.check("1.2.3.4", None) is None  # 4th and 5th from the address
    assert limiter.check("1.2.3.4", None) is None
    refused = limiter.check("1.2.3.4", "other")
    assert refused is not None and refused.scope == "ip"
    assert limiter.check("5.6.7.8", None) is None


def test_a_failing_storage_lets_requests_through(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'never-migrated.db'}")  # no table
    try:
        limiter = RateLimiter(DatabaseStorage(database=db), per_ip=rule(1, 1), per_key=None)
        assert [limiter.check("1.2.3.4", None) for _ in range(3)] == [None, None, None]
    finally:
        db.dispose()


def test_cost_of_one_limited_request_on_sqlite(tmp_path: Path) -> None:
    """One request's two hits (address, credential) in one write transaction; the mean
    cost is printed (``-s``) and bounded loosely (shared CI machines)."""
    db = Database(f"sqlite:///{tmp_path / 'cost.db'}")
    try:
        db.upgrade()
        storage = DatabaseStorage(database=db)
        limiter = RateLimiter(storage, per_ip=rule(1e9, 10**8), per_key=rule(1e9, 10**8))
        limiter.check("warm", "up")
        n = 300
        start_s = time.perf_counter()
        for i in range(n):
            assert limiter.check(f"10.0.{i % 7}.1", f"key{i % 5}") is None
        per_request_ms = (time.perf_counter() - start_s) / n * 1000
        rows = storage.rows()  # a row per key and window (the test may cross an edge)
    finally:
        db.dispose()
    print(f"rate limit on SQLite: {per_request_ms:.3f} ms per request (2 hits, 1 transaction)")
    assert per_request_ms < 25
    # every hit was counted (a failing storage would have let them through silently)
    assert len({r["key"] for r in rows}) == 2 + 7 + 5
    assert sum(r["count"] for r in rows) == 2 + 2 * n


def test_storage_setting_accepts_the_three_kinds_only() -> None:
    from pydantic import ValidationError

    from serving.settings import Settings

    assert Settings().rate_limit_storage == "database"
    for uri in ("memory://", "redis://127.0.0.1:6379", "rediss://cache:6380/0"):
        assert Settings(rate_limit_storage=uri).rate_limit_storage == uri
    for bad in ("", "mongodb://x:1", "redis://", "sqlite:///x.db"):
        with pytest.raises(ValidationError):
            Settings(rate_limit_storage=bad)


# ------------------------------------------------------------------ two live replicas
KEY_BURST, IP_BURST = 4, 6


@contextmanager
def replicas(tmp_path: Path, model: Path, db_url: str, storage: str) -> Iterator[list[str]]:
    """Two uvicorn processes (different ports) on one database and one limit storage."""
    env = clean_env(
        tmp_path,
        database_url=db_url,
        model_path=str(model),
        admin_key=ADMIN_KEY,
        migrate_on_start="false",  # migrated once, before both start
        ort_threads="1",
        outbox_dispatch="false",
        rate_limit_storage=storage,
        rate_limit_per_key=str(mid_window_rate(KEY_BURST)),
        rate_limit_per_key_burst=str(KEY_BURST),
        rate_limit_per_ip=str(mid_window_rate(IP_BURST)),
        rate_limit_per_ip_burst=str(IP_BURST),
    )
    db = Database(db_url)
    try:
        db.upgrade()
    finally:
        db.dispose()
    with ExitStack() as stack:
        procs = []
        for i in range(2):
            port = free_port()
            log = tmp_path / f"replica{i}.log"
            proc = start(uvicorn_argv(port), env=env, cwd=tmp_path, log=log)
            stack.callback(stop, proc)
            procs.append((proc, f"http://127.0.0.1:{port}", log))
        yield [wait_ready(proc, base, log, timeout_s=120) for proc, base, log in procs]


def _alternate(bases: list[str], n: int, headers: dict[str, str]) -> list[httpx.Response]:
    answers = []
    for i in range(n):
        r = httpx.get(f"{bases[i % 2]}/v1/review/queue", headers=headers, timeout=30)
        if r.status_code == 429:
            assert r.json()["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
        answers.append(r)
    return answers


def _one_client_gets_the_configured_rate(bases: list[str]) -> None:
    admin = {"X-API-Key": ADMIN_KEY}
    # KEY_BURST requests pass, whichever replica answers; limits kept per process would
    # let 2 * KEY_BURST through.
    keyed = _alternate(bases, KEY_BURST + 1, admin)
    assert [r.status_code for r in keyed] == [200] * KEY_BURST + [429]
    assert keyed[-1].json()["details"]["scope"] == "key"
    # The address has spent KEY_BURST + 1 of its IP_BURST hits (a request refused for its
    # key still counts against its address): one request more, then the address's 429.
    anonymous = [httpx.get(f"{b}/v1/model", timeout=30) for b in bases]
    assert IP_BURST == KEY_BURST + 2
    assert [r.status_code for r in anonymous] == [200, 429]
    assert anonymous[1].json()["details"]["scope"] == "ip"
    assert all(httpx.get(f"{b}/healthz", timeout=30).status_code == 200 for b in bases)


@pytest.mark.slow
def test_two_replicas_share_the_limit_in_the_database(
    db_url: str, tmp_path: Path, tiny_model: Path
) -> None:
    with replicas(tmp_path, tiny_model, db_url, "database") as bases:
        _one_client_gets_the_configured_rate(bases)


@pytest.mark.slow
def test_memory_storage_counts_per_process(tmp_path: Path, tiny_model: Path) -> None:
    """The control: with ``memory://`` each replica counts alone and the same client
    gets twice the rate, which the shared storages above do not allow."""
    db_url = f"sqlite:///{tmp_path / 'memory-case.db'}"
    with replicas(tmp_path, tiny_model, db_url, "memory://") as bases:
        keyed = _alternate(bases, 2 * KEY_BURST + 1, {"X-API-Key": ADMIN_KEY})
    assert [r.status_code for r in keyed] == [200] * (2 * KEY_BURST) + [429]


# ------------------------------------------------------------------------------ redis
def _redis_missing() -> str | None:
    if shutil.which("redis-server") is None:
        return (
            "redis-server missing: Debian's redis-server is not installed "
            "(apt-get install -y redis-server; .ci/run does this in CI)"
        )
    try:
        import redis  # noqa: F401
    except ImportError:
        return "redis missing: the redis package is not installed (pip install -e '.[redis]')"
    return None


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free port, no persistence, stopped after the test."""
    reason = _redis_missing()
    if reason:
        missing(reason)
    import redis

    port = free_port()
    log = tmp_path / "redis.log"
    argv = [
        str(shutil.which("redis-server")),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    proc = start(argv, env={}, cwd=tmp_path, log=log)
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"redis-server exited with {proc.returncode}:\n{log_tail(log)}")
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server not ready within 30 s:\n{log_tail(log)}")
                time.sleep(0.05)  # polling interval of a bounded wait
        client.close()
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.mark.slow
def test_two_replicas_share_the_limit_in_redis(
    redis_url: str, tmp_path: Path, tiny_model: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'redis-case.db'}"
    with replicas(tmp_path, tiny_model, db_url, redis_url) as bases:
        _one_client_gets_the_configured_rate(bases)
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:  # the counters live in Redis, not in the database
        keys = [str(k) for k in client.keys("*")]
        assert any(k.startswith("LIMITS:{rl/") for k in keys), keys
    finally:
        client.close()


def test_a_redis_that_stops_answering_lets_requests_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Redis that accepts connections and never answers (a paused server) must not hold
    requests: the socket timeout ends the hit, and the request is let through. A TCP
    listener that never accepts stands in for it (the kernel completes the handshake)."""
    pytest.importorskip("redis", reason="the redis package is not installed (the redis extra)")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"redis://127.0.0.1:{silent.getsockname()[1]}"
        storage = open_storage(uri)
        limiter = RateLimiter(storage, per_ip=rule(1, 1), per_key=None)
        answers: list[object] = []
        worker = threading.Thread(target=lambda: answers.append(limiter.check("1.2.3.4", None)))
        with caplog.at_level(logging.ERROR, logger="returnlens.ratelimit"):
            worker.start()
            worker.join(timeout=60)  # a bound for a hang, far above REDIS_TIMEOUT_S
        assert not worker.is_alive(), "the rate limit check hung on a silent Redis"
    assert answers == [None]  # let through
    assert "rate limit storage failed" in caplog.text
    # a URI's own timeout is kept
    kwargs = open_storage(f"{uri}/0?socket_timeout=7").storage.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 7.0 and kwargs["socket_connect_timeout"] == REDIS_TIMEOUT_S
