"""Where a live service's CPU goes on photo uploads: py-spy samples, grouped by stage.

Starts ``returnlens serve --seed-demo`` exactly as ``returnlens bench`` does (its default
workers, SQLite, the shipped model), sends a bounded number of uploads of new phone-like
JPEGs, and records every worker with ``py-spy record --subprocesses --format raw`` (only
threads that are running are sampled, so the shares are CPU shares, not wall time). Each
sample is charged to the innermost frame that belongs to a known stage (decode, quality
gate, ONNX Runtime, SQL, HTTP, ...). Writes ``profile.json``, ``profile.md`` and the raw
collapsed stacks (``stacks.txt``, readable by speedscope or inferno).

    python benchmarks/profile_service.py --kind 12mp --requests 60 --concurrency 1

Needs ``py-spy`` (``pip install -e .[profile]``) and permission to ptrace the worker (root, or
``kernel.yama.ptrace_scope=0``). A benchmark tool: nothing in CI runs it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (stage, substrings of a "function (file:line)" frame); the first stage found walking
# from the leaf towards the root gets the sample.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decode (vision/decode.py)", ("vision/decode.py",)),
    (
        "copy detection (describe + verify)",
        ("vision/copydetect", "vision/copyverify", "vision/copyframe", "services/copy_index"),
    ),
    ("quality gate (vision/quality.py)", ("vision/quality.py",)),
    ("perceptual hash", ("vision/phash.py",)),
    ("model resize (vision/preprocess.py)", ("vision/preprocess.py",)),
    ("ONNX Runtime", ("vision/model.py", "onnxruntime")),
    ("photo store (encode, sha256, write)", ("serving/storage/photos",)),
    ("SQL (SQLAlchemy + sqlite3)", ("sqlalchemy", "sqlite3", "serving/storage/")),
    (
        "policy + facts",
        ("serving/policy", "serving/services/facts.py", "serving/services/decide.py"),
    ),
    ("multipart parsing", ("multipart", "serving/api/uploads.py")),
    (
        "JSON / response models",
        ("pydantic", "json/", "serving/services/outputs.py", "serving/services/records.py"),
    ),
    (
        "HTTP server + framework",
        ("uvicorn", "starlette", "fastapi", "h11", "httptools", "anyio", "asyncio"),
    ),
)


# Leaves that are a thread blocked in a wait, which py-spy sometimes still reports as
# running (a GIL hand-off, a futex that has not yet slept, a photo's fsync: the photo
# store's durable write waits on the disk in ``vision.fsio.wait_for_disk``): not CPU work
# of any stage. SQLite's own fsync, inside its commit, cannot be told apart from the
# commit's CPU and stays in SQL.
WAITS = (
    "wait_for_disk (vision/fsio.py",
    "EpollSelector.select",
    "Condition.wait",
    "Event.wait",
    "Future.result",
    "Queue.get",
    "_worker (concurrent/futures/thread.py",
    "Thread.join",
)


# Threads whose every sample is one stage, whatever the leaf (their SQL included): the
# notification outbox's dispatcher runs beside the requests, in the same process.
THREADS: tuple[tuple[str, str], ...] = (
    ("outbox dispatcher thread (claims, SQL)", "OutboxWorker._loop"),
)


def classify(stack: list[str]) -> str:
    if any(stack[-1].startswith(w) for w in WAITS):
        return "waiting (excluded)"
    for stage, needle in THREADS:
        if any(needle in frame for frame in stack):
            return stage
    for frame in reversed(stack):
        for stage, needles in STAGES:
            if any(n in frame for n in needles):
                return stage
    return "other"


def parse_raw(path: Path) -> Counter[str]:
    """py-spy raw lines: ``frame;frame;...;leaf COUNT`` (root first)."""
    counts: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack_text, _, n = line.rpartition(" ")
        if not stack_text or not n.isdigit():
            continue
        counts[classify(stack_text.split(";"))] += int(n)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=("12mp", "1600px"), default="12mp")
    p.add_argument("--requests", type=int, default=60)
    p.add_argument("--photos", type=int, default=1, help="photos per request")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--rate", type=int, default=400, help="py-spy samples per second")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/profile")
    args = p.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        p.error("py-spy is not installed (pip install py-spy)")

    from benchmarks.harness.common import BenchConfig
    from benchmarks.harness.inputs import make_factories
    from benchmarks.harness.models import resolve_model
    from benchmarks.harness.service_load import LiveService, Shop, run_cell
    from benchmarks.harness.service_section import _reference_jpeg

    cfg = BenchConfig()
    model = resolve_model(cfg)
    # one distinct scene per profiled photo (shoppers' traffic); the warm-up uses spares
    factory = make_factories(quick=False, scenes=args.requests * args.photos)[args.kind]
    args.out.mkdir(parents=True, exist_ok=True)
    svc = LiveService(model.path, cfg.tmp / "profile-service").start()
    shop = Shop(svc, *_reference_jpeg())
    try:
        warm = factory.batch(500_000, 4)
        run_cell(svc.url, list(zip(shop.returns(4), [[w] for w in warm], strict=True)), 1)
        groups = [factory.batch(i * args.photos, args.photos) for i in range(args.requests)]
        jobs = list(zip(shop.returns(args.requests), groups, strict=True))
        raw = args.out / "stacks.txt"
        rec = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(svc.pid),
                "--subprocesses",  # every worker (the service's default is one per core)
                "--rate",
                str(args.rate),
                "--format",
                "raw",
                "--output",
                str(raw),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            result = run_cell(svc.url, jobs, args.concurrency, server_pid=svc.pid)
        finally:
            rec.send_signal(signal.SIGINT)
            rec.wait(timeout=60)
    finally:
        shop.close()
        svc.stop()
    counts = parse_raw(raw)
    waits = counts.pop("waiting (excluded)", 0)
    total = sum(counts.values()) or 1
    cpu = result["server_cpu_ms_per_photo"]
    rows = [
        {
            "stage": s,
            "samples": n,
            "share": round(n / total, 3),
            "cpu_ms_per_photo": round(cpu * n / total, 1) if cpu else None,
        }
        for s, n in counts.most_common()
    ]
    report = {
        "kind": args.kind,
        "photos_per_request": args.photos,
        "concurrency": args.concurrency,
        "requests": args.requests,
        "model": model.to_dict(),
        "request_ms": result["request_ms"],
        "server_cpu_ms_per_photo": cpu,
        "samples": total,
        "wait_samples": waits,
        "stages": rows,
    }
    (args.out / "profile.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [
        f"# Service CPU profile: {args.kind}, {args.photos} photo(s) per request, "
        f"concurrency {args.concurrency}, {args.requests} requests",
        "",
        f"py-spy, {total} samples of running threads ({waits} more were threads "
        "blocked in a wait or a photo's fsync and are left out); server CPU "
        f"{cpu} ms/photo; request p50 {result['request_ms'].get('p50')} ms.",
        "",
        "| Stage | Share of CPU | ms/photo |",
        "|---|---|---|",
    ]
    lines += [f"| {r['stage']} | {r['share']:.1%} | {r['cpu_ms_per_photo']} |" for r in rows]
    (args.out / "profile.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
