"""CPU per stage of a shopper upload, with many photos of the SKU already stored.

    python -m benchmarks.stage_cpu [--stored 300] [--timed 40] [--kind 1600px]

py-spy (``benchmarks/profile_service.py``) samples a live worker, but it charges a
thread waiting for the GIL to the code it runs next, and its service starts empty. This
script runs the real app in one process (``create_app`` with its lifespan, SQLite, the
shipped model, rate limits off as in the service bench), stores ``--stored`` uploads of
the bench's 1600 px (``--kind 12mp``: 12 MP) photos of the shop's one SKU
(``benchmarks/harness/inputs.py``) and then times ``--timed`` more: each stage's function
is wrapped to add the CPU time of the thread that runs it (``time.thread_time``: CPU
only, not waits). ONNX Runtime's second intra-op thread is not on any stage's thread, so
inference shows the caller's share. Each stage's wall-clock span is kept too: the
timeline (median start and end of each stage, from the upload's start) shows the
request's critical path, and ``critical_path_ms`` cuts each request, from its ASGI call
to its answer, into its serial segments (``benchmarks/harness/critical_path.py``): what
the floor with the two checks does not have. ``budget_ms`` sets the stages against
issue 20's CPU target (``budget``): how much CPU the target leaves over the floor, and
how much the quality gate and the copy check take on their own. Writes
``benchmarks/results/stage_cpu.json`` (``stage_cpu_12mp.json``).
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness.common import machine_info, write_json  # noqa: E402
from benchmarks.harness.critical_path import RequestClock, segments  # noqa: E402
from benchmarks.harness.inputs import make_factories  # noqa: E402
from benchmarks.harness.service_section import _reference_jpeg  # noqa: E402

ADMIN = "stage-cpu-admin-key-0123456789abcdef"
SKU = "STAGE-1"


WHOLE = "request thread, whole upload"
REQUEST = "the request, from its ASGI call to its answer"  # a span only: no CPU counted
ORT = "ONNX Runtime (caller's thread)"
COPY = "copy check (describe, search, read, fits, dense)"
GATE = "quality gate + perceptual hash"
CONTEXT = "context read (SQL)"
STORE = "photo store (metadata stripped, written)"
TOKEN = "token check (SQL read)"
COMMITS = "  of the stages: SQL commits"
# The floor of issue 20: decoding the upload plus one model run (its resize included).
FLOOR_STAGES = ("decode", ORT)
# Stages on threads other than the request's (the rest run inside WHOLE).
OTHER_THREADS = (COPY, GATE, CONTEXT, STORE, TOKEN)
CPU_TARGET = 1.4  # issue 20: server CPU per photo / floor CPU per photo, at most


class StageClock:
    """Thread CPU seconds per stage while ``on``, and each call's wall-clock span."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.spans: list[tuple[str, float, float]] = []  # label, start, end (perf_counter)
        self.on = False
        self._lock = threading.Lock()

    def wrap(self, owner: Any, name: str, label: str) -> None:
        real: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start, wall = time.thread_time(), time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                if self.on:
                    with self._lock:
                        spent = time.thread_time() - start
                        self.seconds[label] = self.seconds.get(label, 0.0) + spent
                        self.spans.append((label, wall, time.perf_counter()))

        setattr(owner, name, timed)

    def timeline(self) -> dict[str, dict[str, float]]:
        """Median start and end (ms from the upload's start) of each stage inside the
        uploads: when the work of a stage begins and ends on the request's critical
        path. A stage called several times in one upload spans its first start to its
        last end."""
        offsets: dict[str, list[tuple[float, float]]] = {}
        for _, up_start, up_end in (sp for sp in self.spans if sp[0] == WHOLE):
            inside: dict[str, tuple[float, float]] = {}
            for label, start, end in self.spans:
                if label != WHOLE and up_start <= start <= up_end:
                    first, last = inside.get(label, (start, end))
                    inside[label] = (min(first, start), max(last, end))
            for label, (start, end) in inside.items():
                offsets.setdefault(label, []).append((start - up_start, end - up_start))
        medians = {
            label: {
                "start_ms_p50": round(1000 * statistics.median(s for s, _ in pairs), 1),
                "end_ms_p50": round(1000 * statistics.median(e for _, e in pairs), 1),
            }
            for label, pairs in offsets.items()
        }
        return dict(sorted(medians.items(), key=lambda kv: kv[1]["start_ms_p50"]))


def instrument(clock: StageClock) -> None:
    import serving.services.copy_check as copy_check
    import serving.services.facts as facts
    import serving.services.shopper as shopper
    import vision.model as model
    import vision.pipeline as pipeline

    clock.wrap(shopper, "upload_photos", WHOLE)
    clock.wrap(shopper, "check_shopper_token", TOKEN)
    clock.wrap(facts, "load_upload_context", CONTEXT)
    clock.wrap(copy_check, "check_photo", COPY)
    clock.wrap(facts, "store_upload", "decision write")
    clock.wrap(pipeline.Grader, "_decode", "decode")
    clock.wrap(pipeline.Grader, "_quality", GATE)
    clock.wrap(model.OnnxModel, "predict_images", ORT)
    # Parts of the stages above (their time is in the stage's too).
    import serving.storage.search_facts as search_facts
    import vision.copydetect as copydetect
    import vision.copyverify as copyverify

    clock.wrap(copydetect, "describe", "  of the copy check: describing the photo")
    clock.wrap(copyverify, "fits", "  of the copy check: keypoint fits")
    clock.wrap(copyverify, "agreement", "  of the copy check: dense checks")
    clock.wrap(search_facts, "refresh", "  of the write: search facts")
    clock.wrap(pipeline, "phash", "  of the gate: perceptual hash")
    import serving.storage.photostore as photostore

    clock.wrap(photostore.CleanPuts, "put_all", STORE)
    # Every transaction's commit, in whichever stage it ends (py-spy charges SQLite's
    # fsync inside it, a wait, to SQL; this is the commits' CPU alone).
    from sqlalchemy.engine.default import DefaultDialect

    clock.wrap(DefaultDialect, "do_commit", COMMITS)


def budget(cpu: dict[str, float], cores: int) -> dict[str, float]:
    """What issue 20's CPU target leaves over the floor, against what the two image
    checks (the quality gate and the copy check) take on their own.

    ``cpu``: ms per upload by stage (``cpu_ms_per_upload``). The floor is this run's
    decode plus model run; ``total`` adds every stage's thread (HTTP parsing and the
    event loop are outside it: about 1 ms per photo in the bench's minimal service).
    ``best_*_with_checks`` are the ratios if everything but the floor and the two checks
    cost nothing: the photos/s one assumes all cores busy, as in the bench's c16 cells.
    ``left_for_the_two_checks_ms`` is the other way round: what the allowance leaves for
    the gate and the copy check together once everything else is paid as measured (below
    0: nothing, and the rest alone is over the target). ``ratio_over_floor_and_checks``:
    the total against the floor with the two checks counted in it, the overhead of the
    service's plumbing over the work that decides what a shopper is told.
    ``c1_latency_floor_ms``: the total spread perfectly over ``cores``, the least one
    upload can take on this machine with nothing else running."""
    floor = sum(cpu[s] for s in FLOOR_STAGES)
    checks = cpu[COPY] + cpu[GATE]
    total = cpu[WHOLE] + sum(cpu[s] for s in OTHER_THREADS)
    allowance, rest = (CPU_TARGET - 1) * floor, total - floor - checks
    return {
        "floor_ms": round(floor, 2),
        "allowance_over_floor_ms": round(allowance, 2),
        "gate_and_copy_check_ms": round(checks, 2),
        "everything_else_ms": round(rest, 2),
        "left_for_the_two_checks_ms": round(allowance - rest, 2),
        "total_ms": round(total, 2),
        "cpu_ratio": round(total / floor, 3),
        "best_cpu_ratio_with_checks": round((floor + checks) / floor, 3),
        "ratio_over_floor_and_checks": round(total / (floor + checks), 3),
        "best_throughput_ratio_with_checks": round(floor / (floor + checks), 3),
        "c1_latency_floor_ms": round(total / cores, 1),
    }


def _shop(client: Any, n: int) -> list[tuple[str, str]]:
    """One catalog item with its reference photo, ``n`` orders and a return on each."""
    admin = {"X-API-Key": ADMIN}
    ref, category = _reference_jpeg()
    item = {"sku": SKU, "category": category, "name": "Stage item", "price": 20.0,
            "reference_photo_base64": base64.b64encode(ref).decode()}  # fmt: skip
    assert client.put("/v1/admin/catalog", json=[item], headers=admin).status_code == 200
    delivered = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    rows = [
        {
            "order_id": f"S-{i}",
            "customer_id": f"C-{i}",
            "customer_email": f"c{i}@example.com",
            "sku": SKU,
            "price": 20.0,
            "delivered_at": delivered,
        }
        for i in range(n)
    ]
    assert client.put("/v1/admin/orders", json=rows, headers=admin).status_code == 200
    out = []
    for row in rows:
        body = {"order_id": row["order_id"], "email": row["customer_email"], "sku": SKU,
                "reason": "changed_mind"}  # fmt: skip
        r = client.post("/v1/returns", json=body)
        assert r.status_code == 201, r.text
        out.append((r.json()["return_id"], r.json()["token"]))
    return out


def run(stored: int, timed: int, kind: str = "1600px") -> dict[str, Any]:
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from serving.app import create_app
    from serving.settings import Settings, usable_cores

    photos = make_factories(False, scenes=stored + timed)[kind]
    clock = StageClock()
    instrument(clock)
    root = Path(tempfile.mkdtemp(prefix="stage-cpu-"))
    settings = Settings(
        database_url=f"sqlite:///{root / 'stage.db'}", data_dir=root,
        photo_dir=root / "photos", models_dir=root / "models", admin_key=SecretStr(ADMIN),
        rate_limit_per_ip=0, rate_limit_per_key=0,
    )  # fmt: skip
    app = RequestClock(create_app(settings), clock.spans, REQUEST, lambda: clock.on)
    with TestClient(app) as client:
        returns = _shop(client, stored + timed)
        for k, (return_id, token) in enumerate(returns):
            if k == stored:
                clock.on, wall = True, time.perf_counter()
            files = [("photos", ("p.jpg", photos.make(k), "image/jpeg"))]
            r = client.post(
                f"/v1/returns/{return_id}/photos",
                files=files,
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 200, r.text
            if k % 50 == 0:
                print(f"uploads: {k + 1}/{len(returns)}", file=sys.stderr, flush=True)
        wall = time.perf_counter() - wall
    clock.on = False
    cpu = {k: 1000 * v / timed for k, v in clock.seconds.items()}
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "kind": kind,
        "stored_before": stored,
        "timed_uploads": timed,
        "wall_ms_per_upload": round(1000 * wall / timed, 1),
        "cpu_ms_per_upload": {
            k: round(v, 2) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])
        },
        "budget_ms": budget(cpu, usable_cores()),
        "timeline_ms": clock.timeline(),
        "critical_path_ms": segments(
            clock.spans,
            request=REQUEST,
            upload=WHOLE,
            decode="decode",
            parallel=(ORT, GATE, COPY),
            write="decision write",
        ),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stored", type=int, default=300)
    ap.add_argument("--timed", type=int, default=40)
    ap.add_argument("--kind", choices=("1600px", "12mp"), default="1600px")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    res = run(args.stored, args.timed, args.kind)
    name = "stage_cpu.json" if args.kind == "1600px" else f"stage_cpu_{args.kind}.json"
    write_json(args.out / name, res)
    print(f"{res['timed_uploads']} uploads after {res['stored_before']} stored, CPU ms each:")
    for stage, ms in res["cpu_ms_per_upload"].items():
        print(f"  {stage}: {ms}")
    print("budget (issue 20's CPU target against the floor and the two image checks):")
    for name, value in res["budget_ms"].items():
        print(f"  {name}: {value}")
    print("median start -> end, ms from the upload's start:")
    for stage, t in res["timeline_ms"].items():
        print(f"  {stage}: {t['start_ms_p50']} -> {t['end_ms_p50']}")
    print("the critical path, median ms of each serial segment:")
    for segment, ms in res["critical_path_ms"].items():
        print(f"  {segment}: {ms}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
