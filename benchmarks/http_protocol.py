"""What the HTTP protocol costs a worker per upload: uvicorn's h11, its httptools, and
the service's ``serving.deadlines:DeadlineProtocol`` (httptools with read deadlines).

    python -m benchmarks.http_protocol [--requests 300] [--rounds 3]

Each protocol serves a bare ASGI app (:func:`body_length_app`: it reads the whole body
and answers its length, nothing else) from one uvicorn process on uvloop, and a client
posts the service bench's photos to it as multipart uploads over one kept-alive
connection: a 1600 px JPEG and a 12 MP JPEG (``benchmarks/harness/inputs.py``). The
figure is the server process's CPU (user + system, ``/proc``) per request, over
``--requests`` requests after 20 warm ones; the protocols take turns, ``--rounds``
times (each round starting with the next protocol), and the median round is kept.
Every answer must give the body's length, so a protocol that lost or cut a body fails
the run. Every server process imports the same modules, the service's protocol among
them (:func:`_serve`). Writes ``benchmarks/results/http_protocol.json``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

import serving.deadlines  # noqa: F401  the same modules in every server process (_serve)
from benchmarks.harness.common import ROOT, machine_info, proc_cpu_seconds, write_json
from serving.cluster.servers import free_port

PROTOCOLS = ("h11", "httptools", "serving.deadlines:DeadlineProtocol")
OUT = ROOT / "benchmarks" / "results" / "http_protocol.json"
WARM = 20


async def body_length_app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """Read the whole request body and answer ``{"n": <its length>}``."""
    if scope["type"] != "http":
        return
    n, more = 0, True
    while more:
        message = await receive()
        n += len(message.get("body", b""))
        more = bool(message.get("more_body"))
    body = b'{"n": %d}' % n
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _serve(protocol: str, port: int) -> subprocess.Popen[bytes]:
    """uvicorn serving :func:`body_length_app` with ``protocol``. The app is this module,
    which imports ``serving.deadlines`` (and so FastAPI and pydantic): without it only the
    service's protocol would pull them in, and those imports leave glibc's mmap threshold
    raised, so the other protocols' processes would map each large body buffer afresh
    (0.8 ms more per 12 MP upload, 2026-12-04)."""
    argv = [sys.executable, "-m", "uvicorn", "benchmarks.http_protocol:body_length_app",
            "--port", str(port), "--loop", "uvloop", "--http", protocol,
            "--log-level", "warning"]  # fmt: skip
    return subprocess.Popen(argv, cwd=ROOT)


def _wait_ready(client: httpx.Client, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.get("/")
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def cpu_ms_per_request(protocol: str, photo: bytes, requests: int) -> float:
    """Server CPU (ms) per multipart upload of ``photo`` through ``protocol``."""
    port = free_port()
    server = _serve(protocol, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _wait_ready(client)
            files = {"photos": ("p.jpg", photo, "image/jpeg")}
            for i in range(WARM + requests):
                if i == WARM:
                    start = proc_cpu_seconds(server.pid)
                r = client.post("/", files=files)
                r.raise_for_status()
                if r.json()["n"] <= len(photo):  # the multipart body holds the photo and more
                    raise RuntimeError(f"{protocol} delivered {r.json()['n']} bytes of the body")
            end = proc_cpu_seconds(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    if start is None or end is None:
        raise RuntimeError("the server's CPU time could not be read from /proc")
    return 1000 * (end - start) / requests


def run(requests: int, rounds: int, photos: dict[str, bytes]) -> dict[str, Any]:
    per: dict[str, dict[str, list[float]]] = {k: {p: [] for p in PROTOCOLS} for k in photos}
    for r in range(rounds):
        order = PROTOCOLS[r % len(PROTOCOLS) :] + PROTOCOLS[: r % len(PROTOCOLS)]
        for kind, photo in photos.items():
            for protocol in order:  # each round starts with the next one: no fixed order
                per[kind][protocol].append(cpu_ms_per_request(protocol, photo, requests))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    out: dict[str, Any] = {}
    for kind, by_protocol in per.items():
        medians = {p: round(statistics.median(v), 3) for p, v in by_protocol.items()}
        out[kind] = {
            "photo_bytes": len(photos[kind]),
            "server_cpu_ms_per_request": medians,
            "rounds": {p: [round(x, 3) for x in v] for p, v in by_protocol.items()},
            "saved_ms_against_h11": round(medians["h11"] - medians[PROTOCOLS[-1]], 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    from benchmarks.harness.inputs import make_factories

    factories = make_factories(False, scenes=1)
    photos = {kind: factories[kind].make(0) for kind in ("1600px", "12mp")}
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "requests": args.requests,
        "rounds": args.rounds,
        "kinds": run(args.requests, args.rounds, photos),
    }
    write_json(args.out, result)
    for kind, r in result["kinds"].items():
        print(kind, r["photo_bytes"], "bytes:", r["server_cpu_ms_per_request"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
