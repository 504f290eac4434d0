"""Upload admission's trade: one worker's peak RSS against its throughput, 4 x 12 MP at c16.

    python -m benchmarks.admission_memory [--budgets-mib 0 48 64] [--requests 32]

For each admission budget (``RETURNLENS_UPLOAD_ADMISSION_BYTES``; 0 = admission off) a
fresh ``returnlens serve --seed-demo`` (the service bench's ``LiveService``: one worker,
SQLite, the shipped model) takes 4 warm-up requests at c1, then ``--requests`` requests
of four new 12 MP phone JPEGs each from 16 clients at once (the bench's photos,
``benchmarks/harness/inputs.py``); the worker's peak RSS is reset before that cell.
Writes ``benchmarks/results/admission_memory.json`` and prints one line per budget.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness.common import machine_info, write_json  # noqa: E402
from benchmarks.harness.inputs import make_factories  # noqa: E402
from benchmarks.harness.service_load import LiveService, Shop, run_cell  # noqa: E402
from benchmarks.harness.service_section import _reference_jpeg  # noqa: E402

MiB = 1024 * 1024
MODEL = ROOT / "serving" / "models" / "returnlens-default.onnx"


def one_budget(budget_mib: int, requests: int, photos: Any) -> dict[str, Any]:
    """Warm-up, then the c16 cell of 4-photo requests; peak RSS and photos/s."""
    workdir = Path(tempfile.mkdtemp(prefix=f"admission-{budget_mib}-"))
    budget = {"RETURNLENS_UPLOAD_ADMISSION_BYTES": str(budget_mib * MiB)}
    svc = LiveService(MODEL, workdir, settings=budget).start()
    try:
        shop = Shop(svc, *_reference_jpeg())
        warm = [photos.batch(4 * i, 4) for i in range(4)]
        run_cell(svc.url, list(zip(shop.returns(4), warm, strict=True)), 1)
        groups = [photos.batch(16 + 4 * i, 4) for i in range(requests)]
        reset = svc.reset_peak()
        cell = run_cell(
            svc.url, list(zip(shop.returns(requests), groups, strict=True)), 16, svc.pid
        )
        return {
            "budget_mib": budget_mib,
            "peak_rss_mib": svc.memory()["vmhwm_mib"],
            "peak_reset_before": reset,
            "photos_per_s": cell["photos_per_s"],
            "request_p50_ms": cell["request_ms"].get("p50"),
            "server_cpu_ms_per_photo": cell["server_cpu_ms_per_photo"],
            "outcomes": cell["outcomes"],
            "errors": cell["errors"][:3],
        }
    finally:
        svc.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budgets-mib", type=int, nargs="+", default=[0, 48, 64])
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    photos = make_factories(False, scenes=16 + 4 * args.requests)["12mp"]
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    rows = []
    for budget in args.budgets_mib:
        row = one_budget(budget, args.requests, photos)
        rows.append(row)
        print(
            f"budget {budget} MiB: peak RSS {row['peak_rss_mib']} MiB, "
            f"{row['photos_per_s']} photos/s, p50 {row['request_p50_ms']} ms/request, "
            f"{row['server_cpu_ms_per_photo']} ms CPU/photo",
            flush=True,
        )
    write_json(
        args.out / "admission_memory.json",
        {"date": started, "machine": machine_info(), "requests": args.requests, "rows": rows},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
