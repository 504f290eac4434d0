"""``SUMMARY.md`` from the section JSON files in the results folder.

It reads whatever is there, so ``--only runtime`` refreshes one section and the summary
still shows the others (each section says when it was taken). ``training_gpu.json`` is
shown when present (written by ``returnlens bench --only training --training-device cuda``
on a GPU machine).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.harness.accuracy import summary_lines as accuracy_lines
from benchmarks.harness.common import read_json

COMMAND = "returnlens bench"


def get(data: Any, *path: str | int) -> Any:
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)  # type: ignore[call-overload]
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    else:
        text = str(value)
    return f"{text}{unit}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += [
        "| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows
    ]
    return [*out, ""]


def met(value: Any, op: str, target: float) -> str:
    if not isinstance(value, int | float):
        return "n/a"
    ok = {"<=": value <= target, ">=": value >= target, "<": value < target}[op]
    return "yes" if ok else "**no**"


def _machine(run: Any) -> list[str]:
    m = get(run, "machine") or {}
    v = m.get("versions") or {}
    load = f"{m.get('load_average')} / {get(run, 'load_average_at_end')}"
    rows: list[list[Any]] = [
        ["CPU", m.get("cpu_model")],
        ["Cores (usable)", f"{m.get('cpu_count')} ({m.get('cpu_affinity')})"],
        ["RAM", fmt(m.get("ram_gib"), " GiB")],
        ["Load average (1, 5, 15 min) at start / end", load],
        ["Platform", m.get("platform")],
        ["Python", m.get("python")],
        ["Versions", ", ".join(f"{k} {val}" for k, val in v.items() if val)],
    ]
    return ["## Machine", "", *table(["", ""], [[str(a), str(b)] for a, b in rows])]


def _headline(d: dict[str, Any]) -> list[str]:
    svc, dock, mem, rt = d.get("service"), d.get("dock"), d.get("memory"), d.get("runtime")
    gpu = d.get("training_gpu")
    rows: list[list[Any]] = []
    for kind in ("12mp", "1600px"):
        rows += _service_headline(get(svc, "ratios", kind) or {}, kind)
    fps = get(dock, "fps", "1080p", "watch_fps")
    rows.append(["Dock watch-loop fps, 1080p", fps, ">= 25", met(fps, ">=", 25)])
    for mode in ("standalone", "api"):
        p50 = get(dock, "latency", mode, "p50_ms")
        if p50 is not None:
            rows.append([f"Dock rest -> result p50 ms ({mode})", p50, "< 300", met(p50, "<", 300)])
    rows.append(
        [
            "int8 speedup (batch 1) / accuracy change",
            f"{fmt(get(rt, 'int8', 'latency', '1', 'speedup'))}x / "
            f"{fmt(get(rt, 'int8', 'accuracy_change'))}",
            "-",
            "",
        ]
    )
    tr = d.get("training")
    rows.append(
        [
            "Training images/s (CPU) / data-wait share",
            f"{fmt(get(tr, 'images_per_s'))} / {fmt(get(tr, 'data_wait_share'))}",
            "-",
            "",
        ]
    )
    rows.append(
        [
            "Training images/s (GPU)",
            fmt(get(gpu, "images_per_s")) if gpu else "not measured here (GPU slot)",
            "-",
            "",
        ]
    )
    # The service section's own figure when it ran (it is the newer one), else memory's.
    peak = get(svc, "worker_peak_rss_c16_mib") or get(mem, "service_worker", "peak_rss_mib")
    rows.append(["Worker peak RSS under c16, MiB", peak, "< 500", met(peak, "<", 500)])
    rows.append(
        [
            "Dock RSS growth over the run, MiB",
            get(mem, "dock_station", "growth_after_first_sample_mib"),
            "flat",
            "",
        ]
    )
    return ["## Headline figures", "", *table(["Figure", "Value", "Target", "Met"], rows)]


# Issue 20's targets per photo kind: (ratio key, label, op, target); op None: no target.
SERVICE_TARGETS: dict[str, tuple[tuple[str, str, str | None, float], ...]] = {
    "1600px": (
        ("latency_ratio_1photo", "Service p50 / floor p50, 1-photo", "<=", 1.4),
        ("cpu_per_photo_ratio_1photo_c16", "Service / floor CPU per photo, 1-photo c16", "<=", 1.4),
        ("throughput_ratio_1photo", "Service / floor photos/s, 1-photo c16", ">=", 0.7),
        ("naive_over_service", "Naive / service latency", ">=", 1.3),
    ),
    "12mp": (
        ("latency_ratio_1photo", "Service p50 / floor p50, 1-photo", "<=", 1.25),
        ("cpu_per_photo_ratio_1photo_c16", "Service / floor CPU per photo, 1-photo c16", None, 0),
        ("throughput_ratio_1photo", "Service / floor photos/s, 1-photo c16", ">=", 0.8),
        ("naive_over_service", "Naive / service latency", ">=", 2.0),
    ),
}
# Ratios without a target: the 4-photo cells and the minimal reference service.
SERVICE_FIGURES = (
    ("latency_ratio_4photo", "Service p50 / floor p50, 4-photo"),
    ("throughput_ratio_4photo", "Service / floor photos/s, 4-photo c16"),
    ("naive_over_floor", "Naive / floor latency"),
    ("minimal_latency_over_floor", "Minimal FastAPI+ORT service p50 / floor p50, 1-photo"),
    ("minimal_throughput_over_floor", "Minimal service / floor photos/s, 1-photo c16"),
    ("minimal_cpu_over_floor_c16", "Minimal service / floor CPU per photo, c16"),
    ("service_latency_over_minimal", "Service p50 / minimal service p50, 1-photo"),
    ("service_throughput_over_minimal", "Service / minimal service photos/s, c16"),
    ("service_cpu_over_minimal_c16", "Service / minimal service CPU per photo, c16"),
    # The floor with the quality gate and the copy check (benchmarks/harness/floor_checks.py).
    ("checked_floor_latency_over_floor", "Floor with the two checks p50 / floor p50, 1-photo"),
    ("service_latency_over_checked_floor", "Service p50 / floor with the two checks p50, 1-photo"),
    (
        "service_throughput_over_checked_floor",
        "Service / floor with the two checks photos/s, 1-photo c16",
    ),
    (
        "service_cpu_over_checked_floor_c16",
        "Service / floor with the two checks CPU per photo, 1-photo c16",
    ),
    # How far the VM's speed moved while the kind's cells ran: every ratio moves with it.
    ("floor_p50_drift", "Floor p50 after / before the kind's service cells"),
)


def _service_headline(r: dict[str, Any], kind: str) -> list[list[Any]]:
    """The service's ratios of one photo kind, against issue 20's targets."""
    rows: list[list[Any]] = []
    for key, label, op, target in SERVICE_TARGETS[kind]:
        v = r.get(key)
        goal, verdict = (f"{op} {target}", met(v, op, target)) if op else ("-", "")
        rows.append([f"{label}, {kind}", v, goal, verdict])
    rows += [[f"{label}, {kind}", r.get(key), "-", ""] for key, label in SERVICE_FIGURES]
    return rows


def _service(svc: Any) -> list[str]:
    if not svc:
        return []
    rows = []
    for key, c in (svc.get("cells") or {}).items():
        kind, photos, conc = key.split("/")
        p = c.get("per_photo_ms") or {}
        rows.append(
            [
                kind,
                photos.replace("photo", ""),
                conc[1:],
                c.get("ok"),
                p.get("p50"),
                p.get("p95"),
                p.get("p99"),
                get(c, "request_ms", "p50"),
                c.get("photos_per_s"),
                c.get("server_cpu_ms_per_photo"),
                c.get("client_cpu_ms_per_photo"),
                get(c, "worker_memory", "vmhwm_mib"),
            ]
        )
    out = [
        f"## Service (live uvicorn, {svc.get('workers', 1)} worker(s))",
        "",
        *table(
            [
                "Photos",
                "Per request",
                "Concurrency",
                "Requests",
                "p50 ms/photo",
                "p95",
                "p99",
                "p50 ms/request",
                "Photos/s",
                "Server CPU ms/photo",
                "Client CPU ms/photo",
                "Worker peak RSS MiB",
            ],
            rows,
        ),
    ]
    frows = []
    for kind, f in (svc.get("floor") or {}).items():
        for n in (1, 4):
            frows.append(
                [
                    kind,
                    n,
                    get(f, f"{n}photo", "request_ms", "p50"),
                    get(f, f"{n}photo", "throughput", "photos_per_s"),
                    get(f, f"{n}photo", "throughput", "cpu_ms_per_photo"),
                ]
            )
        frows.append([kind, "naive 1", get(f, "naive_1photo", "per_photo_ms", "p50"), "", ""])
        if f.get("checked_1photo"):
            frows.append(
                [
                    kind,
                    "floor with the two checks 1",
                    get(f, "checked_1photo", "request_ms", "p50"),
                    get(f, "checked_1photo", "throughput", "photos_per_s"),
                    get(f, "checked_1photo", "throughput", "cpu_ms_per_photo"),
                ]
            )
    for kind, m in (svc.get("minimal_service") or {}).items():
        frows.append(
            [
                kind,
                "minimal service 1",
                get(m, "c1", "request_ms", "p50"),
                get(m, "c16", "photos_per_s"),
                get(m, "c16", "server_cpu_ms_per_photo"),
            ]
        )
    for key, c in (svc.get("copy_heavy") or {}).items():  # every upload a near-copy
        frows.append([key, "copy-heavy 1", get(c, "request_ms", "p50"), c.get("photos_per_s"), ""])
    settings = svc.get("settings") or {}
    out += [
        "Floor (in-process decode + ONNX), naive baseline (PIL full decode + torchvision + "
        "torch eager), the minimal FastAPI + ONNX Runtime service (decode, infer, answer; "
        "photos/s and CPU at c16) and the floor with the two checks (in-process decode, "
        "ONNX, quality gate and copy check; photos/s and CPU at its best); the copy-heavy "
        "row repeats one scene (the copy check's early exit), the service cells upload one "
        "scene per photo:",
        "",
        *table(["Photos", "Per request", "p50 ms/request", "Photos/s", "CPU ms/photo"], frows),
        "",
        f"Settings: {', '.join(f'{k} {v}' for k, v in settings.items())}; "
        f"model {svc.get('model_path')}; load average {get(svc, 'machine', 'load_average')} "
        f"at start, {svc.get('load_average_after')} at end.",
    ]
    return out


def _runtime(rt: Any) -> list[str]:
    if not rt:
        return []
    rows = [
        [n, b.get("ort_ms"), b.get("torch_ms"), b.get("torch_over_ort")]
        for n, b in (get(rt, "ort_vs_torch", "batches") or {}).items()
    ]
    out = [
        "## Model runtime",
        "",
        f"Threads: {get(rt, 'ort_vs_torch', 'threads')}.",
        "",
        *table(["Batch", "ORT ms", "torch eager ms", "torch / ORT"], rows),
    ]
    trows = [
        [k, c.get("oversubscribed"), c.get("images_per_s"), c.get("latency_ms_p50")]
        for k, c in (get(rt, "threads", "configs") or {}).items()
    ]
    out += table(
        ["Workers x intra-op threads", "Oversubscribed", "Images/s (all workers)", "p50 ms/image"],
        trows,
    )
    q = rt.get("int8") or {}
    qrows = [
        [n, v.get("fp32_ms"), v.get("int8_ms"), v.get("speedup")]
        for n, v in (q.get("latency") or {}).items()
    ]
    out += [
        f"int8 ({q.get('int8_source')}): accuracy fp32 {fmt(q.get('accuracy_fp32'))}, "
        f"int8 {fmt(q.get('accuracy_int8'))}, top-1 agreement "
        f"{fmt(q.get('top1_agreement'))} on {q.get('test_photos')} test photos.",
        "",
        *table(["Batch", "fp32 ms", "int8 ms", "Speedup"], qrows),
    ]
    return out


def _dock_training_memory(d: dict[str, Any]) -> list[str]:
    out: list[str] = []
    dock = d.get("dock")
    if dock:
        rows = [
            [name, f.get("watch_fps"), f.get("decode_only_fps"), f.get("frames")]
            for name, f in (dock.get("fps") or {}).items()
            if isinstance(f, dict)
        ]
        out += [
            "## Dock station",
            "",
            *table(["Video", "Watch fps", "Decode-only fps", "Frames"], rows),
        ]
        lat = [
            [k, v.get("p50_ms"), v.get("p95_ms"), v.get("n")]
            for k, v in (dock.get("latency") or {}).items()
            if isinstance(v, dict)
        ]
        out += table(["Rest -> result", "p50 ms", "p95 ms", "Items"], lat)
    for name in ("training", "training_gpu"):
        t = d.get(name)
        if t:
            out += [
                f"## Training ({t.get('device_name')})",
                "",
                *table(
                    [
                        "Backbone",
                        "Size",
                        "Batch",
                        "Workers",
                        "Images/s",
                        "Step ms",
                        "Data wait share",
                        "Loader-only images/s",
                    ],
                    [
                        [
                            t.get("backbone"),
                            t.get("image_size"),
                            t.get("batch_size"),
                            t.get("num_workers"),
                            t.get("images_per_s"),
                            t.get("step_ms_mean"),
                            t.get("data_wait_share"),
                            t.get("loader_only_images_per_s"),
                        ]
                    ],
                ),
            ]
    mem = d.get("memory")
    if mem:
        samples = get(mem, "dock_station", "samples") or []
        out += [
            "## Memory",
            "",
            f"Service worker peak RSS under concurrency 16: "
            f"{fmt(get(mem, 'service_worker', 'peak_rss_mib'))} MiB.",
            "",
            *table(
                ["Dock frames", "RSS MiB"], [[s.get("frame"), s.get("vmrss_mib")] for s in samples]
            ),
        ]
    return out + _bombs(d.get("bombs"))


def _bombs(b: Any) -> list[str]:
    """Large-but-legal images (benchmarks/harness/bombs.py)."""
    if not b or "upload" not in b:
        return []
    up, heat = b.get("upload") or {}, b.get("heatmap") or {}
    rows = [
        [name, c.get("status"), c.get("code"), c.get("seconds"), c.get("extra_peak_mib")]
        for name, c in up.items()
        if isinstance(c, dict) and "status" in c
    ]
    rows += [
        [
            f"heatmap of a {heat.get('stored_copy')} stored copy: {name}",
            c.get("status", c.get("statuses")),
            "",
            c.get("seconds"),
            c.get("extra_peak_mib"),
        ]
        for name, c in heat.items()
        if isinstance(c, dict)
    ]
    lat = [
        [
            name,
            get(b, name, "ok"),
            get(b, name, "request_ms", "p50"),
            get(b, name, "request_ms", "p95"),
        ]
        for name in ("normal_unloaded", "normal_with_two_bomb_clients")
    ]
    machine = b.get("machine") or {}
    return [
        "## Large-but-legal images",
        "",
        f"`returnlens bench --only bombs`, {b.get('generated_at', 'n/a')}: "
        f"{machine.get('cpu_model', 'n/a')}, {machine.get('cpu_count', 'n/a')} cores, "
        f"load average {b.get('load_average', 'n/a')}. Bomb upload: six "
        f"{b.get('bomb_png', 'n/a').split(',')[0]} PNGs.",
        "",
        *table(["Request", "Status", "Code", "Seconds", "Worker peak RSS extra, MiB"], rows),
        *table(["One-photo 12 MP uploads", "OK", "p50 ms", "p95 ms"], lat),
        f"p50 with two pixel-bomb clients / unloaded: "
        f"{fmt(b.get('p50_ratio_loaded_over_unloaded'))} (target <= 2).",
        "",
    ]


# The result files the summary reads (``<name>.json`` in the results folder).
SECTION_FILES = (
    "run",
    "inputs",
    "service",
    "runtime",
    "dock",
    "accuracy",
    "training",
    "training_gpu",
    "memory",
    "bombs",
)


def _earlier_sections(d: dict[str, Any]) -> list[str]:
    """A line naming the section files an earlier run wrote (generated before this run
    started), with their dates: the summary is built from every section file present,
    not only this run's. (A section's name does not say which file it wrote: the
    training section writes ``training_gpu.json`` on a GPU.)"""
    started = _when((d.get("run") or {}).get("started_at"))
    earlier = []
    for name in SECTION_FILES:
        if name in ("run", "inputs") or not d.get(name):  # this run's record; inputs: service's
            continue
        when = _when(d[name].get("generated_at"))  # undated: not known to be this run's
        if started is None or when is None or when < started:
            earlier.append(f"{name} ({d[name].get('generated_at', 'n/a')})")
    if not earlier:
        return []
    return [f"From earlier runs, with their dates: {', '.join(earlier)}.", ""]


def _when(stamp: Any) -> datetime | None:
    """A result file's time stamp (``%Y-%m-%dT%H:%M:%S%z``), or None."""
    try:
        return datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def write_summary(out_dir: Path) -> Path:
    d: dict[str, Any] = {n: read_json(out_dir / f"{n}.json") for n in SECTION_FILES}
    run = d["run"] or {}
    lines = [
        "# ReturnLens benchmark summary",
        "",
        f"Generated {run.get('finished_at', 'n/a')} by `{COMMAND}` "
        f"(sections this run: {', '.join(run.get('sections', []))}).",
        "",
        *_earlier_sections(d),
    ]
    if run.get("quick"):
        lines += [
            "**--quick run: tiny inputs and the tiny test model; the figures mean nothing.**",
            "",
        ]
    lines += [
        f"Model: {get(run, 'model', 'kind')} `{get(run, 'model', 'version')}` "
        f"({get(run, 'model', 'note')}).",
        "",
        f"Inputs: {get(d['inputs'], 'source')}.",
        "",
    ]
    lines += _machine(run) + _headline(d) + accuracy_lines(d["accuracy"])
    lines += _service(d["service"]) + _runtime(d["runtime"])
    lines += _dock_training_memory(d)
    lines += [
        "## Reproduce",
        "",
        "```",
        f"{COMMAND}                          # or: make bench",
        "returnlens bench --only service,runtime   # some sections",
        "returnlens bench --only accuracy          # grade accuracy: dock and shopper",
        "returnlens bench --quick                  # smoke run (seconds)",
        "```",
        "",
    ]
    path = out_dir / "SUMMARY.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
