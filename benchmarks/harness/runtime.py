"""Section "runtime": the model runtime on its own.

1. ORT vs torch eager (the same architecture, random weights) at batch 1, 4 and 16, both
   with the service's thread count;
2. ORT threads on this box: intra-op 1 vs all cores in one process, and 1 vs 2 worker
   processes, each worker with 1 thread (cores // workers, what ``Settings`` picks) or
   with all cores (oversubscribed). Workers are child processes released together;
3. fp32 vs int8 (``quantization.py``).

Inputs are random uint8 batches already at the model's input size: decode and resize
are the floor's business, this is the graph alone.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness.common import ROOT, cores, log

BATCHES = (1, 4, 16)


def _batch(size: int, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def time_calls(fn: Any, repeats: int) -> float:
    """Median milliseconds of ``fn()`` after one warm-up call."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples)


def ort_vs_torch(model_path: Path, *, threads: int, repeats: int) -> dict[str, Any]:
    import torch

    from benchmarks.harness.models import torch_twin
    from vision.model import OnnxModel

    model = OnnxModel(model_path, intra_op_threads=threads)
    size = model.card.preprocess.input_size
    torch.set_num_threads(threads)
    module, backbone = torch_twin(model.card)
    out: dict[str, Any] = {"threads": threads, "torch_backbone": backbone, "batches": {}}
    for n in BATCHES:
        x = _batch(size, n)
        xt = torch.from_numpy(x)

        def run_torch(xt: Any = xt) -> None:
            with torch.inference_mode():
                module(xt)

        ort_ms = time_calls(lambda x=x: model.predict(x), repeats)
        torch_ms = time_calls(run_torch, repeats)
        out["batches"][str(n)] = {
            "ort_ms": round(ort_ms, 2),
            "torch_ms": round(torch_ms, 2),
            "ort_ms_per_image": round(ort_ms / n, 2),
            "torch_ms_per_image": round(torch_ms / n, 2),
            "torch_over_ort": round(torch_ms / ort_ms, 2),
        }
        log(f"  batch {n}: ORT {ort_ms:.1f} ms, torch eager {torch_ms:.1f} ms")
    return out


def _spawn_workers(model: Path, workers: int, threads: int, n: int) -> list[dict[str, Any]]:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.harness.runtime",
        "--worker",
        str(model),
        str(threads),
        str(n),
    ]
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    for p in procs:  # each prints "ready" after loading + warm-up
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a runtime benchmark worker failed to start")
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def thread_settings(model_path: Path, *, images: int) -> dict[str, Any]:
    """Aggregate images/s and per-call latency for workers x intra-op threads, batch 1."""
    n_cores = cores()
    out: dict[str, Any] = {"cores": n_cores, "images_per_worker": images, "configs": {}}
    for workers in (1, 2):
        for threads in sorted({1, n_cores}):
            runs = _spawn_workers(model_path, workers, threads, images)
            wall = max(r["wall_s"] for r in runs)
            key = f"{workers}w_x_{threads}t"
            out["configs"][key] = {
                "workers": workers,
                "intra_op_threads": threads,
                "oversubscribed": workers * threads > n_cores,
                "images_per_s": round(sum(r["images"] for r in runs) / wall, 2),
                "latency_ms_p50": round(statistics.median(r["p50_ms"] for r in runs), 2),
            }
            log(f"  {key}: {out['configs'][key]}")
    return out


def _worker_main(model_path: str, threads: int, n: int) -> None:
    """Child process: load, warm up, say ready, wait for go, run n batch-1 calls."""
    from vision.model import OnnxModel

    model = OnnxModel(model_path, intra_op_threads=threads)
    x = _batch(model.card.preprocess.input_size, 1)
    model.predict(x)
    print("ready", flush=True)
    sys.stdin.readline()
    samples = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        model.predict(x)
        samples.append((time.perf_counter() - t0) * 1000.0)
    wall = time.perf_counter() - start
    print(json.dumps({"images": n, "wall_s": wall, "p50_ms": statistics.median(samples)}))


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--worker":
    _worker_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
