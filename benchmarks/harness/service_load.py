"""Load against a live ``returnlens serve`` on 127.0.0.1.

The service runs as the user would start it (``returnlens serve --seed-demo``, its
default workers) with its own SQLite database and photo folder under the harness's tmp
dir, rate limits off (``RETURNLENS_RATE_LIMIT_PER_IP/KEY=0``) and an admin key from
``RETURNLENS_ADMIN_KEY``. Before each timed cell the harness creates, through the admin
and shopper APIs, one fresh delivered order (own customer) and one return per request,
so no policy precheck, duplicate check or repeat-returner rule can refuse or short-cut
an upload; every photo is new bytes and new pixels (``inputs.PhotoFactory``).

Timed part: N requests ``POST /v1/returns/{id}/photos`` (1 or 4 photos each) from C
client threads (httpx, one connection each). Latency is measured per request by the
client (upload + server work + response); per-photo latency is request latency / photos;
photos/s is photos / wall time of the cell. Server CPU is the whole process tree's
(supervisor and workers); RSS is the largest worker's, from /proc.
"""

from __future__ import annotations

import base64
import os
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.harness.common import (
    ROOT,
    percentiles,
    proc_cpu_seconds,
    proc_memory,
    process_tree,
    reset_peak_rss,
    tree_cpu_seconds,
)
from vision.errors import ConfigError

TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Cell:
    kind: str  # "12mp" | "1600px"
    photos: int  # per request
    concurrency: int
    requests: int

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.photos}photo/c{self.concurrency}"


def plan(quick: bool, kinds: Sequence[str] = ("12mp", "1600px")) -> list[Cell]:
    """Bounded request counts: enough for p95 at c1, a few full waves at c16."""
    counts = (
        {1: {1: 2, 4: 4, 16: 16}, 4: {1: 1, 4: 4, 16: 8}}
        if quick
        else {1: {1: 20, 4: 32, 16: 64}, 4: {1: 10, 4: 16, 16: 32}}
    )
    return [Cell(k, n, c, counts[n][c]) for k in kinds for n in (1, 4) for c in (1, 4, 16)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveService:
    """``returnlens serve --seed-demo`` in a subprocess: ``pid`` is the process it started
    (with several workers, their supervisor; ``memory`` and ``run_cell`` read the tree)."""

    def __init__(
        self,
        model: Path,
        workdir: Path,
        *,
        threads: int | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.model, self.workdir = model, workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_key = f"bench-admin-{secrets.token_hex(12)}"
        self.threads = threads
        # Settings under test (``RETURNLENS_`` variables), on top of the bench's own.
        self.settings = settings or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "serve.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def env(self) -> dict[str, str]:
        w = self.workdir
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETURNLENS_")}
        env.update(
            {
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                "RETURNLENS_DATABASE_URL": f"sqlite:///{w / 'bench.db'}",
                "RETURNLENS_DATA_DIR": str(w),
                "RETURNLENS_PHOTO_DIR": str(w / "photos"),
                "RETURNLENS_MODELS_DIR": str(w / "models"),
                "RETURNLENS_MODEL_PATH": str(self.model),
                "RETURNLENS_ADMIN_KEY": self.admin_key,
                "RETURNLENS_RATE_LIMIT_PER_IP": "0",
                "RETURNLENS_RATE_LIMIT_PER_KEY": "0",
            }
        )
        if self.threads:
            env["RETURNLENS_ORT_THREADS"] = str(self.threads)
        env.update(self.settings)
        return env

    def command(self) -> list[str]:
        """The service as a user starts it (the minimal reference service overrides it)."""
        return [
            sys.executable,
            "-m",
            "returnlens.cli",
            "serve",
            "--seed-demo",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]

    def start(self, timeout: float = 300.0) -> LiveService:
        import httpx

        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        with self.log_path.open("wb") as log_file:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=self.env(),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ConfigError(
                    f"the service exited with status {self.proc.returncode}: {self.log_tail()}",
                    code="bench_service_failed",
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)  # polling for readiness, not timing anything
        self.stop()
        raise ConfigError(
            f"the service was not ready after {timeout:.0f} s: {self.log_tail()}",
            code="bench_service_failed",
        )

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def memory(self) -> dict[str, float]:
        """The largest process's RSS and peak RSS (with several workers: the largest
        worker's), the process count and the RSS of all of them together."""
        each = [proc_memory(p) for p in process_tree(self.pid)]
        out = {
            key: max((m[key] for m in each if key in m), default=0.0)
            for key in ("vmrss_mib", "vmhwm_mib")
        }
        out["processes"] = float(len(each))
        out["all_processes_rss_mib"] = round(sum(m.get("vmrss_mib", 0.0) for m in each), 1)
        return out

    def reset_peak(self) -> bool:
        return all([reset_peak_rss(p) for p in process_tree(self.pid)])

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


class Shop:
    """Catalog item, orders and returns for the timed uploads (created untimed)."""

    def __init__(self, svc: LiveService, reference_jpeg: bytes, category: str) -> None:
        import httpx

        self.svc = svc
        self.client = httpx.Client(base_url=svc.url, timeout=120)
        self.sku, self.counter = f"BENCH-{category.upper()}-1", 0
        r = self.client.put(
            "/v1/admin/catalog",
            headers=svc.admin_headers(),
            json=[
                {
                    "sku": self.sku,
                    "category": category,
                    "name": "Benchmark item",
                    "price": 20.0,
                    "reference_photo_base64": base64.b64encode(reference_jpeg).decode(),
                }
            ],
        )
        _check(r, 200, "catalog upsert")

    def returns(self, n: int) -> list[tuple[str, str]]:
        """``n`` fresh (return id, shopper token) pairs, one new order + customer each."""
        start, self.counter = self.counter, self.counter + n
        delivered = (datetime.now(UTC) - timedelta(days=3)).isoformat()
        rows = [
            {
                "order_id": f"BENCH-{i:06d}",
                "customer_id": f"BENCH-C{i:06d}",
                "customer_email": f"bench{i}@example.com",
                "sku": self.sku,
                "price": 20.0,
                "delivered_at": delivered,
            }
            for i in range(start, start + n)
        ]
        _check(
            self.client.put("/v1/admin/orders", headers=self.svc.admin_headers(), json=rows),
            200,
            "orders upsert",
        )
        out = []
        for row in rows:
            r = self.client.post(
                "/v1/returns",
                json={
                    "order_id": row["order_id"],
                    "email": row["customer_email"],
                    "sku": self.sku,
                    "reason": "changed_mind",
                },
            )
            _check(r, 201, "return creation")
            body = r.json()
            out.append((str(body["return_id"]), str(body["token"])))
        return out

    def warmed_jobs(
        self, make: Callable[[int], bytes], warm: int, requests: int
    ) -> list[tuple[tuple[str, str], list[bytes]]]:
        """Store ``warm`` one-photo uploads of ``make(0)``, ``make(1)``, ... at one client
        (untimed: the worker's caches, and earlier photos of the SKU for the copy check),
        then return ``requests`` one-photo jobs of the photos after them, a new return
        each, for ``run_cell``."""
        done = list(zip(self.returns(warm), [[make(i)] for i in range(warm)], strict=True))
        run_cell(self.svc.url, done, 1, server_pid=self.svc.pid)
        photos = [[make(warm + i)] for i in range(requests)]
        return list(zip(self.returns(requests), photos, strict=True))

    def close(self) -> None:
        self.client.close()


def _check(response: Any, status: int, what: str) -> None:
    if response.status_code != status:
        raise ConfigError(
            f"benchmark setup failed: {what} answered {response.status_code}: "
            f"{response.text[:300]}",
            code="bench_setup_failed",
        )


def run_cell(
    url: str,
    jobs: Sequence[tuple[tuple[str, str], Sequence[bytes]]],
    concurrency: int,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """Send every job (return, photos) from ``concurrency`` threads; time each request.

    CPU seconds of the server process and of this (client) process over the cell are
    recorded too: on a small box the load generator shares the cores with the server.
    """
    import httpx

    work: queue.Queue[tuple[tuple[str, str], Sequence[bytes]]] = queue.Queue()
    for job in jobs:
        work.put(job)
    lock = threading.Lock()
    latencies: list[tuple[float, int]] = []
    outcomes: Counter[str] = Counter()
    errors: list[str] = []
    clients = [httpx.Client(base_url=url, timeout=TIMEOUT_S) for _ in range(concurrency)]
    go = threading.Barrier(concurrency + 1)

    def worker(client: httpx.Client) -> None:
        go.wait()
        while True:
            try:
                (return_id, token), photos = work.get_nowait()
            except queue.Empty:
                return
            files = [
                ("photos", (f"photo{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)
            ]
            start = time.perf_counter()
            try:
                r = client.post(
                    f"/v1/returns/{return_id}/photos",
                    files=files,
                    headers={"Authorization": f"Bearer {token}"},
                )
                ms = (time.perf_counter() - start) * 1000.0
                ok = r.status_code == 200
                outcome = r.json()["decision"]["outcome"] if ok else f"http_{r.status_code}"
                detail = "" if ok else r.text[:200]
            except httpx.HTTPError as exc:
                ms, ok, outcome, detail = 0.0, False, "transport_error", str(exc)[:200]
            with lock:
                outcomes[outcome] += 1
                if ok:
                    latencies.append((ms, len(photos)))
                else:
                    errors.append(f"{outcome}: {detail}")

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    go.wait()
    start = time.perf_counter()
    cpu0 = tree_cpu_seconds(server_pid) if server_pid else None
    client0 = proc_cpu_seconds()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    cpu1 = tree_cpu_seconds(server_pid) if server_pid else None
    client1 = proc_cpu_seconds()
    for c in clients:
        c.close()
    photos = sum(n for _, n in latencies)

    def per_photo_ms(a: float | None, b: float | None) -> float | None:
        if a is None or b is None or not photos:
            return None
        return round(1000 * (b - a) / photos, 1)

    return {
        "requests": len(jobs),
        "ok": len(latencies),
        "photos": photos,
        "server_cpu_ms_per_photo": per_photo_ms(cpu0, cpu1),
        "client_cpu_ms_per_photo": per_photo_ms(client0, client1),
        "wall_s": round(wall, 3),
        "photos_per_s": round(photos / wall, 2) if wall else None,
        "request_ms": percentiles([ms for ms, _ in latencies]),
        "per_photo_ms": percentiles([ms / n for ms, n in latencies]),
        "outcomes": dict(outcomes),
        "errors": errors[:5],
    }
