"""The order of a benchmark run and where each section's figures go.

model -> inputs -> service (+ floor, naive) -> runtime -> dock -> accuracy -> training ->
memory -> bombs (large-but-legal images) -> SUMMARY.md. The service goes first, while
the harness process has not yet imported torch for its own sections. Each section writes
``<section>.json`` as soon as it is done, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.harness.common import (
    BenchConfig,
    cores,
    load_average,
    log,
    machine_info,
    read_json,
    write_json,
)
from benchmarks.harness.models import ModelChoice, resolve_model


def _stamp(cfg: BenchConfig, model: ModelChoice | None) -> dict[str, Any]:
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": cfg.quick,
        "model_kind": model.kind if model else None,
        "load_average": load_average(),
    }


def _runtime(cfg: BenchConfig, model: ModelChoice) -> dict[str, Any]:
    from benchmarks.harness.dataset import bench_manifest
    from benchmarks.harness.quantization import fp32_vs_int8
    from benchmarks.harness.runtime import ort_vs_torch, thread_settings

    repeats = 3 if cfg.quick else 20
    log("runtime: ORT vs torch eager")
    out: dict[str, Any] = {
        "ort_vs_torch": ort_vs_torch(model.path, threads=cores(), repeats=repeats)
    }
    log("runtime: ORT threads and workers")
    out["threads"] = thread_settings(model.path, images=10 if cfg.quick else 60)
    log("runtime: fp32 vs int8")
    out["int8"] = fp32_vs_int8(
        model.path,
        bench_manifest(cfg),
        cfg.tmp / "models" / "int8",
        threads=cores(),
        calibration=8 if cfg.quick else 64,
        repeats=repeats,
    )
    return out


def _memory(
    cfg: BenchConfig, model: ModelChoice, service: dict[str, Any] | None, factories: dict[str, Any]
) -> dict[str, Any]:
    from benchmarks.harness.dock import load_dock_bench, videos
    from benchmarks.harness.memory import dock_station_memory, service_worker_memory

    out: dict[str, Any] = {}
    if service is not None:
        cells = {k: c["worker_memory"] for k, c in service["cells"].items() if k.endswith("/c16")}
        out["service_worker"] = {
            "peak_rss_mib": service.get("worker_peak_rss_c16_mib"),
            "after_warmup": service.get("worker_memory_after_warmup"),
            "c16_cells": cells,
            "source": "service section",
        }
    else:
        log("memory: service worker under a concurrency-16 load")
        run = service_worker_memory(cfg, model.path, factories)
        out["service_worker"] = {"peak_rss_mib": get_peak(run), **run, "source": "own load"}
    try:
        vids = videos(cfg, load_dock_bench())
        video = vids.get("720p") or next(iter(vids.values()))
        out["dock_station"] = dock_station_memory(cfg, model.path, video)
    except Exception as exc:  # the dock is still landing; keep the service figure
        out["dock_station"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    return out


def get_peak(run: dict[str, Any]) -> float | None:
    value = run.get("after_c16", {}).get("vmhwm_mib")
    return float(value) if value is not None else None


def run_bench(cfg: BenchConfig) -> dict[str, Path]:
    """Run the configured sections; returns the files written."""
    started = time.time()
    cfg.tmp.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    log(
        f"machine: {machine['cpu_model']}, {machine['cpu_count']} cores, load "
        f"{machine['load_average']}; sections {', '.join(cfg.sections)}"
        f"{' (quick)' if cfg.quick else ''}"
    )
    model = resolve_model(cfg)
    model_info = model.to_dict()
    log(f"model: {model.kind} {model_info['version']} ({model.path})")
    written: dict[str, Path] = {}
    timings: dict[str, float] = {}
    factories: dict[str, Any] = {}
    if cfg.wants("service") or cfg.wants("memory") or cfg.wants("bombs"):
        from benchmarks.harness.inputs import describe, make_factories

        factories = make_factories(cfg.quick, cfg.seed)
        if cfg.wants("service") or cfg.wants("memory"):  # the figures these inputs explain
            written["inputs"] = write_json(
                cfg.out / "inputs.json", {**_stamp(cfg, model), **describe(factories)}
            )

    def section(name: str, fn: Any, *args: Any, file: str | None = None) -> Any:
        log(f"== {name}")
        t0 = time.time()
        try:
            data = fn(*args)
        except Exception as exc:  # one broken section must not lose the others' figures
            log(f"{name} failed: {type(exc).__name__}: {exc}")
            data = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
        timings[name] = round(time.time() - t0, 1)
        written[name] = write_json(
            cfg.out / f"{file or name}.json", {**_stamp(cfg, model), "model": model_info, **data}
        )
        return data

    service = None
    if cfg.wants("service"):
        from benchmarks.harness.service_section import run_service

        service = section("service", run_service, cfg, model.path, factories)
        service = service if "cells" in service else None
    if cfg.wants("runtime"):
        section("runtime", _runtime, cfg, model)
    if cfg.wants("dock"):
        from benchmarks.harness.dock import run_dock

        section("dock", run_dock, cfg, model.path)
    if cfg.wants("accuracy"):
        from benchmarks.harness.accuracy import run_accuracy

        section("accuracy", run_accuracy, cfg, model.path)
    if cfg.wants("training"):
        from benchmarks.harness.dataset import bench_manifest
        from benchmarks.harness.training_bench import training_throughput

        file = "training" if cfg.training_device == "cpu" else "training_gpu"
        section(
            "training",
            lambda: training_throughput(cfg, bench_manifest(cfg), device=cfg.training_device),
            file=file,
        )
    if cfg.wants("memory"):
        section("memory", _memory, cfg, model, service, factories)
    if cfg.wants("bombs"):
        from benchmarks.harness.bombs import run_bombs

        section("bombs", run_bombs, cfg, model.path, factories)
    if cfg.wants("search"):
        from benchmarks.search_bench import run_search

        n, repeats = (2_000, 5) if cfg.quick else (100_000, 25)
        section("search", lambda: run_search(None, n, repeats, folder=cfg.tmp / "search"))
    previous = read_json(cfg.out / "run.json") or {}
    written["run"] = write_json(
        cfg.out / "run.json",
        {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "quick": cfg.quick,
            "sections": list(cfg.sections),
            "seconds": round(time.time() - started, 1),
            "section_seconds": {**previous.get("section_seconds", {}), **timings},
            "machine": machine,
            "load_average_at_end": load_average(),
            "model": model_info,
        },
    )
    from benchmarks.harness.report import write_summary

    written["summary"] = write_summary(cfg.out)
    log(f"wrote {', '.join(str(p) for p in written.values())}")
    return written
