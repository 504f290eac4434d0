"""Light upload slots against throughput: 1600 px uploads from 16 clients at once.

    python -m benchmarks.upload_slots [--slots 8 2] [--rounds 2] [--requests 96] [--kind 12mp]

For each ``RETURNLENS_UPLOAD_CONCURRENCY`` value (how many requests with light photos one
worker grades at once; ``serving.api.admission.UploadSlots``) a fresh ``returnlens serve
--seed-demo`` (the service bench's ``LiveService``: one worker per core, SQLite, the shipped
model) takes 30 one-photo uploads at c1 (which also stores photos of the SKU for the copy
check, as the bench does), then ``--requests`` one-photo uploads from 16 clients at once
(the bench's 1600 px photos, ``benchmarks/harness/inputs.py``; ``--kind 12mp``: its 12 MP
ones). The values alternate for
``--rounds`` rounds, so a busy moment of the machine does not land on one value only.
Writes ``benchmarks/results/upload_slots.json`` (``upload_slots_12mp.json``) and prints one
line per service.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness.common import machine_info, write_json  # noqa: E402
from benchmarks.harness.inputs import make_factories  # noqa: E402
from benchmarks.harness.service_load import LiveService, Shop, run_cell  # noqa: E402
from benchmarks.harness.service_section import _reference_jpeg  # noqa: E402

MODEL = ROOT / "serving" / "models" / "returnlens-default.onnx"
WARM = 30


def one(slots: int, requests: int, kind: str = "1600px") -> dict[str, Any]:
    factory = make_factories(False)[kind]
    workdir = Path(tempfile.mkdtemp(prefix="upload-slots-"))
    settings = {"RETURNLENS_UPLOAD_CONCURRENCY": str(slots)}
    svc = LiveService(MODEL, workdir, settings=settings).start()
    try:
        shop = Shop(svc, *_reference_jpeg())
        jobs = shop.warmed_jobs(factory.make, WARM, requests)
        svc.reset_peak()
        cell = run_cell(svc.url, jobs, 16, server_pid=svc.pid)
        shop.close()
        return {
            "slots": slots,
            "photos_per_s": cell["photos_per_s"],
            "server_cpu_ms_per_photo": cell["server_cpu_ms_per_photo"],
            "request_ms_p50": cell["request_ms"].get("p50"),
            "outcomes": dict(cell["outcomes"]),
            "errors": cell["errors"],
            "worker_peak_rss_mib": svc.memory().get("vmhwm_mib"),
        }
    finally:
        svc.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slots", type=int, nargs="+", default=[8, 2])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=96)
    ap.add_argument("--kind", choices=("1600px", "12mp"), default="1600px")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    start = {"date": datetime.now(UTC).isoformat(timespec="seconds"), **machine_info()}
    runs = []
    for _ in range(args.rounds):
        for slots in args.slots:
            r = one(slots, args.requests, args.kind)
            runs.append(r)
            print(
                f"{slots} light slots: {r['photos_per_s']} photos/s, "
                f"{r['server_cpu_ms_per_photo']} ms CPU/photo, p50 {r['request_ms_p50']} ms, "
                f"peak {r['worker_peak_rss_mib']} MiB, outcomes {r['outcomes']}",
                flush=True,
            )
    name = "upload_slots.json" if args.kind == "1600px" else f"upload_slots_{args.kind}.json"
    write_json(
        args.out / name,
        {"machine": start, "kind": args.kind, "clients": 16, "warm_uploads": WARM, "runs": runs},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
