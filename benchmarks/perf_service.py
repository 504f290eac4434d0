"""Where a live service's CPU goes at the native level: ``perf`` over 16 clients' uploads.

    python -m benchmarks.perf_service [--requests 96] [--concurrency 16] [--out DIR]

py-spy (``benchmarks/profile_service.py``) names the Python code a thread runs, and says
nothing of what the C underneath spends: the interpreter itself, the cyclic garbage
collector, malloc, page faults, context switches. This script starts the service as the
bench does (``LiveService``: ``returnlens serve --seed-demo``, default workers, SQLite,
the shipped model), stores 30 one-photo uploads of the shop's SKU at one client, then
records every process of the service with ``perf record -e cpu-clock`` (a software
clock: no hardware counters needed, as in a VM) while ``--requests`` one-photo 1600 px
uploads arrive from ``--concurrency`` clients. Writes ``perf_service.json`` (share of
the samples by shared object, the collector's and the kernel's share, the cell's
photos/s and server CPU per photo) and ``perf_service.txt`` (the top symbols). Needs
``perf`` (Debian's ``linux-perf``) and the right to record other processes (root, or
``kernel.perf_event_paranoid`` <= 1); without them it says so and exits 2.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness.common import machine_info, process_tree, write_json  # noqa: E402
from benchmarks.harness.inputs import make_factories  # noqa: E402
from benchmarks.harness.service_load import LiveService, Shop, run_cell  # noqa: E402
from benchmarks.harness.service_section import _reference_jpeg  # noqa: E402

MODEL = ROOT / "serving" / "models" / "returnlens-default.onnx"
WARM = 30
# CPython's cyclic collector: its own functions and the traversals it drives.
GC_SYMBOLS = ("gc_collect", "visit_reachable", "visit_decref", "move_unreachable",
              "subtract_refs", "update_refs", "deduce_unreachable")  # fmt: skip


def _attached(perf: subprocess.Popen[bytes], data: Path) -> None:
    """Wait until ``perf record`` has opened its output (it is recording), or say why not."""
    deadline = time.monotonic() + 10.0
    while not data.exists():
        if perf.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(
                "perf record could not attach to the service (run as root, or set "
                "kernel.perf_event_paranoid to 1 or less)"
            )
        time.sleep(0.05)  # polling for perf to start, not timing anything


def _samples(data: Path) -> list[tuple[float, str, str]]:
    """(percent, shared object, symbol) of every line of ``perf report``."""
    text = subprocess.run(
        ["perf", "report", "-i", str(data), "--no-children", "--sort", "dso,sym", "-g", "none",
         "--stdio"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[0].endswith("%") or line.lstrip().startswith("#"):
            continue
        rows.append((float(parts[0].rstrip("%")), parts[1], " ".join(parts[3:])))
    return rows


def summarise(rows: list[tuple[float, str, str]]) -> dict[str, Any]:
    by_dso: dict[str, float] = defaultdict(float)
    for share, dso, _ in rows:
        by_dso[dso] += share
    gc = sum(s for s, dso, sym in rows if "libpython" in dso and sym.startswith(GC_SYMBOLS))
    top = sorted(by_dso.items(), key=lambda kv: -kv[1])[:15]
    return {
        "share_by_object_pct": {k: round(v, 2) for k, v in top},
        "python_cyclic_gc_pct": round(gc, 2),
        "kernel_pct": round(by_dso.get("[kernel.kallsyms]", 0.0), 2),
    }


def run(requests: int, concurrency: int, out: Path) -> dict[str, Any]:
    factory = make_factories(False)["1600px"]
    svc = LiveService(MODEL, Path(tempfile.mkdtemp(prefix="perf-service-"))).start()
    data = out / "perf_service.data"
    try:
        shop = Shop(svc, *_reference_jpeg())
        jobs = shop.warmed_jobs(factory.make, WARM, requests)
        pids = ",".join(str(p) for p in process_tree(svc.pid))
        perf = subprocess.Popen(
            ["perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-o", str(data), "-p", pids],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _attached(perf, data)
        cell = run_cell(svc.url, jobs, concurrency, server_pid=svc.pid)
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
        shop.close()
    finally:
        svc.stop()
    rows = _samples(data)
    (out / "perf_service.txt").write_text(
        "".join(f"{s:6.2f}%  {dso}  {sym}\n" for s, dso, sym in rows[:80]), encoding="utf-8"
    )
    data.unlink(missing_ok=True)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "requests": requests,
        "concurrency": concurrency,
        "photos_per_s": cell["photos_per_s"],
        "server_cpu_ms_per_photo": cell["server_cpu_ms_per_photo"],
        "outcomes": dict(cell["outcomes"]),
        **summarise(rows),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=96)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    if shutil.which("perf") is None:
        print("perf is not installed (Debian: apt-get install linux-perf)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    res = run(args.requests, args.concurrency, args.out)
    write_json(args.out / "perf_service.json", res)
    print(
        f"{res['photos_per_s']} photos/s, {res['server_cpu_ms_per_photo']} ms CPU/photo; "
        f"cyclic GC {res['python_cyclic_gc_pct']}% and kernel {res['kernel_pct']}% of samples"
    )
    for name, share in res["share_by_object_pct"].items():
        print(f"  {share:6.2f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
