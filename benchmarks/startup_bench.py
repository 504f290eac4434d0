"""Start-up: how long ``returnlens --help`` takes, and how long ``returnlens serve`` takes
until ``/readyz`` answers 200 with the shipped model (issue targets: 150 ms and 5 s).

``python -m benchmarks.startup_bench [--help-runs 10] [--serve-runs 3]``

Each figure is the median of fresh processes (wall clock from spawn to exit, or to the
first 200 from ``/readyz``, polled every 20 ms), on an empty SQLite database in a
temporary folder. Writes ``benchmarks/results/startup.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness.common import machine_info, write_json
from serving.cluster.servers import free_port

OUT = Path(__file__).resolve().parent / "results"
CLI = [sys.executable, "-m", "returnlens"]


def help_seconds(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*CLI, "--help"], check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - start)
    return out


def ready_seconds(runs: int, timeout_s: float = 60.0) -> list[float]:
    out = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
            port = free_port()
            env = {
                **os.environ,
                "RETURNLENS_DATA_DIR": tmp,
                "RETURNLENS_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                "RETURNLENS_PHOTO_DIR": f"{tmp}/photos",
                "RETURNLENS_ADMIN_KEY": "startup-bench-admin-key-0123456789",
            }
            start = time.perf_counter()
            proc = subprocess.Popen(
                [*CLI, "serve", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                out.append(_wait_ready(f"http://127.0.0.1:{port}", start, timeout_s))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    return out


def _wait_ready(url: str, start: float, timeout_s: float) -> float:
    while time.perf_counter() - start < timeout_s:
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"the service was not ready within {timeout_s:.0f} s")


def report(help_runs: int, serve_runs: int) -> dict[str, Any]:
    helps, readies = help_seconds(help_runs), ready_seconds(serve_runs)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "help_ms_median": round(statistics.median(helps) * 1000, 1),
        "help_ms_runs": [round(h * 1000, 1) for h in helps],
        "ready_s_median": round(statistics.median(readies), 2),
        "ready_s_runs": [round(r, 2) for r in readies],
        "targets": {"help_ms": 150, "ready_s": 5},
    }


def markdown(r: dict[str, Any]) -> str:
    return (
        f"Start-up, {r['date']} ({r['machine'].get('cpu_count')} CPUs, load average "
        f"{r['machine'].get('load_average')}):\n\n"
        "| figure | median | target |\n|---|---|---|\n"
        f"| `returnlens --help` | {r['help_ms_median']} ms | < 150 ms |\n"
        f"| `returnlens serve` to `/readyz` 200 (shipped model) | {r['ready_s_median']} s "
        "| < 5 s |\n"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--help-runs", type=int, default=10)
    p.add_argument("--serve-runs", type=int, default=3)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    r = report(args.help_runs, args.serve_runs)
    write_json(args.out / "startup.json", r)
    (args.out / "startup.md").write_text(markdown(r))
    print(markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
