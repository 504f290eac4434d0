"""The physical floor of a photo decision, in-process: decode + one ONNX run.

Exactly the two steps no implementation can skip, done with the service's own parts:
``Grader.decode`` (magic-byte sniff, pixel bound, DCT-domain downscale of JPEGs to the
1600 px working size) and ``OnnxModel.predict_images`` (the card's resize + one batch
through ONNX Runtime with the service's thread count). No quality gate, hashing, policy,
storage or HTTP: everything the service adds on top is overhead against this.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.harness.common import percentiles, proc_cpu_seconds


def floor_once(grader: Any, uploads: Sequence[bytes]) -> float:
    """Milliseconds to decode ``uploads`` and score them as one batch."""
    start = time.perf_counter()
    decoded = [grader.decode(data) for data in uploads]
    grader.model.predict_images([p.rgb for p in decoded])
    return (time.perf_counter() - start) * 1000.0


def floor_latency(grader: Any, groups: Sequence[Sequence[bytes]]) -> dict[str, Any]:
    """Sequential requests: per-request and per-photo latency percentiles."""
    return latency(lambda g: floor_once(grader, g), groups)


def floor_throughput(
    grader: Any, groups: Sequence[Sequence[bytes]], threads: Sequence[int]
) -> dict[str, Any]:
    """Photos/s with N requests in flight in one process (GIL released in decode and ORT).

    The floor throughput is the best over ``threads``: the most this box can do.
    """
    return throughput(lambda g: floor_once(grader, g), groups, threads)


Once = Callable[[Sequence[bytes]], float]  # one request's uploads -> its milliseconds


def latency(once: Once, groups: Sequence[Sequence[bytes]]) -> dict[str, Any]:
    """``once`` over ``groups`` in turn (after one warm-up call): per-request and
    per-photo latency percentiles."""
    once(groups[0])  # warm the decoder and the session for this batch size
    times = [once(g) for g in groups]
    per_photo = [t / len(g) for t, g in zip(times, groups, strict=True)]
    return {"request_ms": percentiles(times), "per_photo_ms": percentiles(per_photo)}


def throughput(
    once: Once, groups: Sequence[Sequence[bytes]], threads: Sequence[int]
) -> dict[str, Any]:
    """Photos/s and the process's CPU per photo with N calls of ``once`` in flight, for
    each N of ``threads``; the best N's figures are the result's own."""
    by_threads: dict[str, float] = {}
    cpu: dict[str, float | None] = {}
    photos = sum(len(g) for g in groups)
    for n in threads:
        with ThreadPoolExecutor(max_workers=n) as pool:
            start, cpu0 = time.perf_counter(), proc_cpu_seconds()
            list(pool.map(once, groups))
            wall, cpu1 = time.perf_counter() - start, proc_cpu_seconds()
        by_threads[str(n)] = round(photos / wall, 2)
        cpu[str(n)] = (
            round(1000 * (cpu1 - cpu0) / photos, 1)
            if cpu0 is not None and cpu1 is not None
            else None
        )
    best = max(by_threads, key=lambda k: by_threads[k])
    return {
        "photos": photos,
        "photos_per_s_by_threads": by_threads,
        "photos_per_s": by_threads[best],
        "cpu_ms_per_photo_by_threads": cpu,
        "cpu_ms_per_photo": cpu[best],
    }
