"""Section "service": live-service cells, the in-process floor, the naive baseline, ratios.

Order per photo kind (12 MP, then 1600 px): every cell of the plan against the live
service; between cells the service is idle, and the floor and the naive baseline run
in the harness process on the *same files* as the concurrency-1 and -16 cells, and so
does the floor with the two checks (``floor_checks``: decode, model, quality gate, copy
check) on the 1-photo cells' files. The peak RSS of the worker is reset before each
concurrency-16 cell and read after it.

Every timed photo shows its own scene (``inputs``: photo ``i`` of a kind is scene ``i``
of that kind, and the kinds share none), so each kind's cells count from index 0. The
copy-heavy worst case (every upload a near-duplicate of an earlier one) is measured once,
apart, as ``copy_heavy["1600px/1photo/c1/repeated"]``, after all the other cells.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from benchmarks.harness.common import BenchConfig, load_average, log, machine_info, ratio
from benchmarks.harness.floor import floor_latency, floor_throughput
from benchmarks.harness.inputs import PhotoFactory
from benchmarks.harness.minimal_service import MinimalService
from benchmarks.harness.service_load import Cell, LiveService, Shop, plan, run_cell
from benchmarks.harness.service_ratios import checked_ratios, minimal_ratios, ratios
from serving.commands.service import MALLOC_ARENAS

# Issue 20's targets, per photo kind (ratios of one run).
TARGETS = {
    "1600px": {
        "latency_ratio_1photo": "<= 1.4",
        "cpu_per_photo_ratio_1photo_c16": "<= 1.4",
        "throughput_ratio_1photo": ">= 0.7",
        "naive_over_service": ">= 1.3",
    },
    "12mp": {
        "latency_ratio_1photo": "<= 1.25",
        "throughput_ratio_1photo": ">= 0.8",
        "naive_over_service": ">= 2",
    },
    "worker_peak_rss_c16_mib": "< 500",
}
# Stored shopper photos the checked floor's copy check searches and verifies against:
# more than its candidates per query (8 + 4 per content box), like a SKU with many returns.
CHECKED_FLOOR_STORED = 96


def _reference_jpeg() -> tuple[bytes, str]:
    """The catalog reference photo of the SKU every benchmark scene shows."""
    from PIL import Image

    from benchmarks.harness.scenes import shop_sku
    from vision.synth import render_reference

    sku = shop_sku()
    buf = io.BytesIO()
    Image.fromarray(render_reference(sku, 384)).save(buf, format="JPEG", quality=90)
    return buf.getvalue(), sku.category


def _cells_for_kind(
    svc: LiveService, shop: Shop, factory: PhotoFactory, cells: list[Cell], first_index: int
) -> tuple[dict[str, Any], dict[str, list[list[bytes]]]]:
    """Run the cells of one kind; returns results and the photo groups used per cell."""
    out: dict[str, Any] = {}
    used: dict[str, list[list[bytes]]] = {}
    index = first_index
    for cell in cells:
        groups = []
        for _ in range(cell.requests):
            groups.append(factory.batch(index, cell.photos))
            index += cell.photos
        jobs = list(zip(shop.returns(cell.requests), groups, strict=True))
        reset = svc.reset_peak() if cell.concurrency == 16 else None
        result = run_cell(svc.url, jobs, cell.concurrency, server_pid=svc.pid)
        result["worker_memory"] = {**svc.memory(), "peak_reset_before": reset}
        out[cell.key] = result
        used[cell.key] = groups
        log(
            f"  {cell.key}: p50 {result['request_ms'].get('p50')} ms/request, "
            f"{result['photos_per_s']} photos/s, outcomes {result['outcomes']}"
        )
    return out, used


def _repeated_cell(
    svc: LiveService, shop: Shop, factory: PhotoFactory, quick: bool
) -> dict[str, Any]:
    """The copy-detection worst case: 1-photo 1600 px uploads at concurrency 1, each a
    near-duplicate (new noise offset) of one spare scene uploaded once, untimed, before
    them. Not one of the plan's cells: no ratio or target reads it."""
    cell = next(c for c in plan(quick) if (c.kind, c.photos, c.concurrency) == ("1600px", 1, 1))
    log(f"copy-heavy cell: {cell.requests} uploads repeating one 1600px scene")
    first = factory.distinct  # the first spare scene; every ``spares``-th index repeats it
    run_cell(svc.url, [(shop.returns(1)[0], [factory.make(first)])], 1)  # the original
    photos = [[factory.make(first + factory.spares * (k + 1))] for k in range(cell.requests)]
    result = run_cell(svc.url, list(zip(shop.returns(cell.requests), photos, strict=True)), 1)
    result["scenes"] = 1
    log(
        f"  {cell.key}/repeated: p50 {result['request_ms'].get('p50')} ms/request, "
        f"outcomes {result['outcomes']}"
    )
    return {f"{cell.key}/repeated": result}


def _floor_and_naive(
    grader: Any,
    used: dict[str, list[list[bytes]]],
    kind: str,
    threads: int,
    with_naive: bool,
    reference: bytes,
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for n in (1, 4):
        c1, c16 = used[f"{kind}/{n}photo/c1"], used[f"{kind}/{n}photo/c16"]
        res[f"{n}photo"] = {
            **floor_latency(grader, c1),
            "throughput": floor_throughput(grader, c16, sorted({1, threads})),
        }
    res["checked_1photo"] = _checked_floor(grader, used, kind, threads, reference)
    if with_naive:
        from benchmarks.harness.naive import naive_latency

        res["naive_1photo"] = naive_latency(
            grader.card, [g[0] for g in used[f"{kind}/1photo/c1"]], threads=threads
        )
    return res


def _checked_floor(
    grader: Any, used: dict[str, list[list[bytes]]], kind: str, threads: int, reference: bytes
) -> dict[str, Any]:
    """The floor with the quality gate and the copy check (``floor_checks.CheckedFloor``)
    on the 1-photo cells' photos, against the 4-photo cells' photos as the stored shopper
    photos (others of the same scenes' kind, none of them the photo checked) and the
    shop's catalog reference photo."""
    from benchmarks.harness.floor_checks import CheckedFloor

    stored = [p for n in (1, 4, 16) for g in used[f"{kind}/4photo/c{n}"] for p in g]
    floor = CheckedFloor(grader, stored[:CHECKED_FLOOR_STORED], reference)
    try:
        return {
            "stored_photos": len(floor.shop.features),
            **floor.latency(used[f"{kind}/1photo/c1"]),
            "throughput": floor.throughput(used[f"{kind}/1photo/c16"], sorted({1, threads})),
        }
    finally:
        floor.close()


def _floor_probe(grader: Any, factory: PhotoFactory, cells: list[Cell]) -> float | None:
    """The floor's p50 on the photos of the kind's first cell (1 photo, c1), measured
    before the kind's cells. The floor the ratios divide by is measured after them, on
    the same photos; the two p50s' ratio (``floor_p50_drift``) is how far this VM's
    speed moved meanwhile, which moves every ratio of the kind by as much."""
    first = cells[0]
    assert (first.photos, first.concurrency) == (1, 1), "the 1-photo c1 cell comes first"
    groups = [factory.batch(i, 1) for i in range(first.requests)]
    p50: float | None = floor_latency(grader, groups)["request_ms"].get("p50")
    return p50


def _minimal_cells(
    svc: LiveService, used: dict[str, list[list[bytes]]], kind: str
) -> dict[str, Any]:
    """The minimal reference service on the same photos as the product's 1-photo c1 and
    c16 cells (fake return ids: it keeps nothing)."""
    out: dict[str, Any] = {}
    run_cell(svc.url, [(("min-warm", "none"), used[f"{kind}/1photo/c1"][0])], 1)
    for c in (1, 16):
        groups = used[f"{kind}/1photo/c{c}"]
        jobs = [((f"min-{i}", "none"), g) for i, g in enumerate(groups)]
        reset = svc.reset_peak() if c == 16 else None
        result = run_cell(svc.url, jobs, c, server_pid=svc.pid)
        result["worker_memory"] = {**svc.memory(), "peak_reset_before": reset}
        out[f"c{c}"] = result
        log(
            f"  minimal {kind}/1photo/c{c}: p50 {result['request_ms'].get('p50')} ms, "
            f"{result['photos_per_s']} photos/s, {result['server_cpu_ms_per_photo']} ms CPU/photo"
        )
    return out


def run_service(
    cfg: BenchConfig, model: Path, factories: dict[str, PhotoFactory]
) -> dict[str, Any]:
    """Everything for service.json (and the worker-memory figures for memory.json)."""
    from serving.settings import Settings, usable_cores
    from vision.pipeline import _GATE_POOL, Grader

    served = Settings()  # the defaults: the bench's service has no RETURNLENS_ overrides
    workers, threads = served.workers, served.threads_per_worker()
    # The floor and the naive script are one process with every core: the most one
    # request can get from this box, whatever the service's worker split.
    floor_threads = usable_cores()
    svc = LiveService(model, cfg.tmp / "service").start()
    log(f"service up on {svc.url} (pid {svc.pid}); worker RSS {svc.memory()}")
    try:
        minimal = MinimalService(
            model, cfg.tmp / "minimal-service", threads=threads, workers=workers
        ).start()
    except Exception:
        svc.stop()
        raise
    log(f"minimal reference service up on {minimal.url} (pid {minimal.pid})")
    reference, category = _reference_jpeg()
    shop = Shop(svc, reference, category)
    result: dict[str, Any] = {
        "url": svc.url,
        "workers": workers,
        "ort_threads": threads,
        # What the figures were taken on and with (issue 20: stated in every run).
        "machine": machine_info(),
        "model_path": str(model),
        "settings": {
            "workers": workers,
            "ort_intra_op_threads": threads,
            "gate_pool_threads": _GATE_POOL._max_workers,
            # The served worker's (its environment has no RETURNLENS_ overrides):
            # serving.api.admission.UploadSlots.
            "upload_slots_light": served.light_upload_slots(),
            "upload_slots_heavy": Settings.model_fields["heavy_upload_concurrency"].default,
            "malloc_arena_max": MALLOC_ARENAS,
            "minimal_service": "FastAPI + uvicorn, decode + ONNX only, the same workers "
            "and ORT threads per worker",
            "floor_ort_threads": floor_threads,
        },
        "cells": {},
        "minimal_service": {},
        "floor": {},
        "ratios": {},
        "targets": TARGETS,
    }
    grader = Grader.load(model, intra_op_threads=floor_threads)
    grader.model.warmup()
    try:
        warm = factories["1600px"].batch(900_000, 2)
        run_cell(svc.url, list(zip(shop.returns(2), [[w] for w in warm], strict=True)), 1)
        result["worker_memory_after_warmup"] = svc.memory()
        for kind, factory in factories.items():
            cells = [c for c in plan(cfg.quick) if c.kind == kind]
            before = _floor_probe(grader, factory, cells)
            log(f"service cells for {kind} photos (floor p50 before them: {before} ms)")
            res, used = _cells_for_kind(svc, shop, factory, cells, 0)
            result["cells"].update(res)
            log(f"minimal reference service for {kind} photos")
            result["minimal_service"][kind] = _minimal_cells(minimal, used, kind)
            log(f"floor and naive baseline for {kind} photos")
            result["floor"][kind] = _floor_and_naive(
                grader, used, kind, floor_threads, with_naive=True, reference=reference
            )
            result["ratios"][kind] = {
                **ratios(result["cells"], result["floor"][kind], kind),
                "floor_p50_drift": ratio(
                    result["floor"][kind]["1photo"]["request_ms"].get("p50"), before
                ),
                **minimal_ratios(
                    result["cells"], result["minimal_service"][kind], result["floor"][kind], kind
                ),
                **checked_ratios(result["cells"], result["floor"][kind], kind),
            }
            log(f"  ratios {kind}: {result['ratios'][kind]}")
        result["copy_heavy"] = _repeated_cell(svc, shop, factories["1600px"], cfg.quick)
    finally:
        shop.close()
        svc.stop()
        minimal.stop()
    result["load_average_after"] = load_average()
    peaks = [
        c["worker_memory"].get("vmhwm_mib")
        for k, c in result["cells"].items()
        if k.endswith("/c16")
    ]
    result["worker_peak_rss_c16_mib"] = max((p for p in peaks if p is not None), default=None)
    return result
