"""Section "memory": peak RSS of one service worker under load, dock station RSS over time.

* Service worker: ``VmHWM`` of the uvicorn worker process (``/proc/<pid>/status``), reset
  (``clear_refs``) before each concurrency-16 cell and read after it. Taken from the
  service section when it ran; otherwise a short concurrency-16 load is run here.
* Dock station: the real standalone station (``serving.dock.app.run_station``, local
  grading with the same model) on the 720p simulator video looped to 10,000 frames, in a
  child process that samples its own ``VmRSS`` every 1,000 frames. Flat means bounded
  buffers: the growth after the first sample should be a few MiB, not a slope.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.harness.common import ROOT, BenchConfig, log, proc_memory

DOCK_FRAMES, DOCK_EVERY = 10_000, 1_000
QUICK_FRAMES, QUICK_EVERY = 300, 100


def service_worker_memory(
    cfg: BenchConfig, model: Path, factories: dict[str, Any]
) -> dict[str, Any]:
    """A concurrency-16 load of 1-photo 12 MP uploads, when the service section did not run."""
    from benchmarks.harness.service_load import LiveService, Shop, run_cell
    from benchmarks.harness.service_section import _reference_jpeg

    svc = LiveService(model, cfg.tmp / "service-memory").start()
    try:
        shop = Shop(svc, *_reference_jpeg())
        n = 16 if cfg.quick else 64
        factory = factories["12mp"]
        jobs = list(zip(shop.returns(n), [[factory.make(i)] for i in range(n)], strict=True))
        idle = svc.memory()
        reset = svc.reset_peak()
        cell = run_cell(svc.url, jobs, 16)
        shop.close()
        return {
            "idle": idle,
            "after_c16": {**svc.memory(), "peak_reset_before": reset},
            "requests": cell["ok"],
            "photos_per_s": cell["photos_per_s"],
        }
    finally:
        svc.stop()


def dock_station_memory(cfg: BenchConfig, model: Path, video: Path) -> dict[str, Any]:
    frames, every = (QUICK_FRAMES, QUICK_EVERY) if cfg.quick else (DOCK_FRAMES, DOCK_EVERY)
    out = cfg.tmp / "dock" / "memory-run"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.harness.memory",
        "--dock-child",
        str(video),
        str(model),
        str(out),
        str(frames),
        str(every),
    ]
    log(f"  dock station: {frames} frames of {video.name} (looped), RSS every {every}")
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return {"error": f"dock memory child failed ({done.returncode}): {done.stderr[-800:]}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    samples = [s["vmrss_mib"] for s in result["samples"]]
    if len(samples) >= 2:
        result["growth_after_first_sample_mib"] = round(samples[-1] - samples[0], 1)
        result["max_minus_min_mib"] = round(max(samples) - min(samples), 1)
    return result


def _dock_child(video: str, model: str, out: str, frames: int, every: int) -> None:
    import shutil

    from serving.dock.app import DockOptions, run_station

    shutil.rmtree(out, ignore_errors=True)
    samples: list[dict[str, Any]] = []

    def on_frame(index: int) -> None:
        if (index + 1) % every == 0:
            samples.append({"frame": index + 1, **proc_memory()})

    summary = run_station(
        DockOptions(
            source=video, out=Path(out), model=Path(model), price=50.0, loop=True, max_frames=frames
        ),
        on_frame=on_frame,
    )
    print(
        json.dumps(
            {
                "frames": summary.get("frames"),
                "fps": round(summary.get("fps", 0), 1),
                "inspections": summary.get("inspections"),
                "samples": samples,
                "final": proc_memory(),
            }
        )
    )


if __name__ == "__main__" and len(sys.argv) == 7 and sys.argv[1] == "--dock-child":
    _dock_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
