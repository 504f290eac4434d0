"""Smoke test of the benchmark harness (``returnlens bench --quick``), so it cannot rot.

One real run on tiny inputs with the tiny test model: a live ``returnlens serve``
subprocess, the floor, the naive torch baseline, the runtime comparison with worker
processes, int8 quantisation, the dock simulator, a few training steps and the memory
sampling. It checks that every section file and the summary are written with the keys
the README's table is built from, and that every upload was accepted (a refused upload
would make the latency figures lie). No timing is asserted: benchmarks are not tests.
``--quick --only accuracy`` runs on its own: the accuracy figures of the tiny model mean
nothing, so only the fields and that the counts add up are asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.harness.common import ROOT, BenchConfig, percentiles
from returnlens.cli import main

pytestmark = pytest.mark.slow


def _load(out: Path, name: str) -> Any:
    return json.loads((out / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from benchmarks.harness.runner import run_bench

    out = tmp_path_factory.mktemp("bench")
    written = run_bench(BenchConfig(out=out, quick=True))
    assert set(written) >= {
        "inputs",
        "service",
        "runtime",
        "dock",
        "training",
        "memory",
        "accuracy",
        "run",
        "summary",
    }
    return out


def test_service_section_has_every_cell_and_no_refused_upload(quick_run: Path) -> None:
    svc = _load(quick_run, "service")
    keys = {f"{k}/{n}photo/c{c}" for k in ("12mp", "1600px") for n in (1, 4) for c in (1, 4, 16)}
    assert set(svc["cells"]) == keys
    for key, cell in svc["cells"].items():
        assert cell["ok"] == cell["requests"] > 0, (key, cell["errors"])
        assert cell["photos"] == cell["ok"] * int(key.split("/")[1][0])
        assert {"p50", "p95", "p99"} <= set(cell["per_photo_ms"])
        assert cell["photos_per_s"] > 0
        assert not any(o.startswith(("http_", "transport")) for o in cell["outcomes"])
        assert cell["worker_memory"]["vmhwm_mib"] > 0
        assert cell["server_cpu_ms_per_photo"] is not None
    for kind in ("12mp", "1600px"):
        assert set(svc["ratios"][kind]) == {
            "latency_ratio_1photo",
            "throughput_ratio_1photo",
            "latency_ratio_4photo",
            "throughput_ratio_4photo",
            "naive_over_service",
            "naive_over_floor",
            "cpu_per_photo_ratio_1photo_c16",
            "cpu_per_photo_ratio_4photo_c16",
            "minimal_latency_over_floor",
            "minimal_throughput_over_floor",
            "minimal_cpu_over_floor_c16",
            "service_latency_over_minimal",
            "service_throughput_over_minimal",
            "service_cpu_over_minimal_c16",
            "checked_floor_latency_over_floor",
            "service_latency_over_checked_floor",
            "service_throughput_over_checked_floor",
            "service_cpu_over_checked_floor_c16",
            "floor_p50_drift",
        }
        # the floor measured before the kind's cells too: how far the VM moved meanwhile
        assert svc["ratios"][kind]["floor_p50_drift"] > 0
        # The minimal FastAPI + ONNX Runtime reference answered every photo too.
        for cell in svc["minimal_service"][kind].values():
            assert cell["ok"] == cell["requests"] > 0, cell["errors"]
        floor = svc["floor"][kind]
        assert floor["1photo"]["throughput"]["photos_per_s"] > 0
        assert floor["naive_1photo"]["per_photo_ms"]["n"] == 2
        # the floor with the two checks timed every 1-photo c1 file, against stored photos
        checked = floor["checked_1photo"]
        assert checked["request_ms"]["n"] == svc["cells"][f"{kind}/1photo/c1"]["requests"]
        assert checked["stored_photos"] > 0 and checked["throughput"]["photos_per_s"] > 0


def test_inputs_runtime_dock_training_memory_sections(quick_run: Path) -> None:
    inputs = _load(quick_run, "inputs")
    assert inputs["12mp"]["width"] > inputs["1600px"]["width"] and "source" in inputs
    rt = _load(quick_run, "runtime")
    assert set(rt["ort_vs_torch"]["batches"]) == {"1", "4", "16"}
    assert {"1w_x_1t", "2w_x_1t"} <= set(rt["threads"]["configs"])
    assert rt["int8"]["test_photos"] > 0 and "accuracy_change" in rt["int8"]
    dock = _load(quick_run, "dock")
    assert dock["fps"]["360p"]["watch_fps"] > 0, dock
    train = _load(quick_run, "training")
    assert train["images_per_s"] > 0 and 0.0 <= train["data_wait_share"] <= 1.0
    mem = _load(quick_run, "memory")
    assert mem["service_worker"]["peak_rss_mib"] > 0
    assert [s["frame"] for s in mem["dock_station"]["samples"]] == [100, 200, 300]


def test_summary_table(quick_run: Path) -> None:
    text = (quick_run / "SUMMARY.md").read_text()
    for needle in (
        "## Machine",
        "## Headline figures",
        "Service p50 / floor p50, 1-photo, 12mp",
        "Naive / service latency",
        "Service p50 / minimal service p50",
        "Floor p50 after / before the kind's service cells",
        "Service p50 / floor with the two checks p50, 1-photo",
        f"## Service (live uvicorn, {_load(quick_run, 'service')['workers']} worker(s))",
        "Dock watch-loop fps",
        "copy-heavy 1",  # the repeated-scene cell beside the distinct-scene ones
        "## Reproduce",
        "--quick run",
    ):
        assert needle in text
    run = _load(quick_run, "run")
    assert run["machine"]["cpu_count"] >= 1 and run["model"]["kind"] == "tiny test model"


@pytest.fixture(scope="module")
def quick_accuracy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-accuracy")
    assert main(["bench", "--quick", "--only", "accuracy", "--out", str(out)]) == 0
    return out


def _confusion_total(figures: dict[str, Any]) -> int:
    return sum(sum(row) for row in figures["confusion"])


def test_accuracy_section_fields_and_counts_add_up(quick_accuracy: Path) -> None:
    acc = _load(quick_accuracy, "accuracy")
    assert set(acc["targets"]) == {"dock_exact_accuracy", "dock_good_items_to_salvage"}
    dock = acc["dock"]
    assert "error" not in dock, dock
    assert dock["items"] == dock["inspected"] + len(dock["missed"]) > 0
    assert dock["routed"] + dock["review"] == dock["inspected"] == len(dock["per_item"])
    grades = dock["grades"]
    assert grades["n"] == dock["inspected"] == _confusion_total(grades)
    assert 0 <= grades["exact"] <= grades["within_one"] <= grades["n"]
    assert set(dock["good_written_off"]) == {"salvage_tier", "liquidation", "recycle", "any"}
    assert sum(dock["channels"].values()) == dock["routed"]
    assert sum(v["items"] for v in dock["videos"]) == dock["items"]
    shop = acc["shopper"]
    assert "error" not in shop, shop
    assert shop["photos"] == len(shop["per_photo"]) == _confusion_total(shop["model_only_grades"])
    assert shop["gate_passed"] == shop["grades"]["n"] == _confusion_total(shop["grades"])
    assert {r["size"] for r in shop["per_photo"]} == set(shop["sizes"])
    assert min(shop["sizes"]) >= 640 and max(shop["sizes"]) <= 1600
    if shop["unfamiliarity_score"]:
        assert shop["familiar_grades"]["n"] + shop["abstained_unfamiliar"] <= shop["gate_passed"]
    text = (quick_accuracy / "SUMMARY.md").read_text()
    for needle in ("## Accuracy", "Dock exact grade", "Shopper exact grade", ">= 95.0%"):
        assert needle in text


def test_unknown_section_is_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--only", "service,gpu"]) == 2
    assert "unknown benchmark section(s) gpu" in capsys.readouterr().err


def test_harness_imports_no_torch() -> None:
    code = (
        "import sys; import benchmarks.cli, benchmarks.harness.runner, "
        "benchmarks.harness.naive, benchmarks.harness.runtime, benchmarks.harness.training_bench, "
        "benchmarks.harness.quantization, benchmarks.harness.memory, benchmarks.harness.dock, "
        "benchmarks.harness.accuracy, benchmarks.harness.accuracy_dock, "
        "benchmarks.harness.accuracy_shopper; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_percentiles_interpolate() -> None:
    p = percentiles([10.0, 20.0, 30.0, 40.0, 50.0])
    assert (p["n"], p["p50"], p["p95"], p["min"], p["max"]) == (5, 30.0, 48.0, 10.0, 50.0)
    assert percentiles([]) == {"n": 0}
