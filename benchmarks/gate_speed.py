"""Milliseconds per photo of the photo-quality gate (``vision.quality.assess_quality``).

The service's two upload kinds, from the benchmark harness (benchmarks/harness/inputs.py):
a 12-megapixel phone JPEG and a 1600 px browser downscale, each decoded the way the
service decodes (``decode_for_grading``: DCT-downscaled, so the 1600 px JPEG arrives as
800 x 600). Decoding is done once, outside the timing; each round times the gate on every
photo of a set, and the median over rounds of the mean per photo is reported: wall time,
and CPU time of the whole process (OpenCV's worker threads, spinning while idle, count
too, so CPU can exceed wall; ``--cv-threads 1`` gives the single-threaded cost).

    python benchmarks/gate_speed.py [--scenes 12] [--rounds 7] [--cv-threads N] [--parts]

``--parts`` also times each part of ``vision.quality.measure`` on its own (the working
copy, the grey and brightest-channel images, the 128 px mask copy, the item mask,
framing, sharpness), each from the images the part before made, in CPU ms per photo of
the calling thread: where the gate's time goes.

Prints the figures and writes benchmarks/results/gate_speed.json (with the date and the
machine, ``benchmarks.harness.common.machine_info``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness.common import machine_info, write_json  # noqa: E402
from benchmarks.harness.inputs import make_factories  # noqa: E402
from vision import quality, quality_light, quality_mask  # noqa: E402
from vision.pipeline import decode_for_grading  # noqa: E402
from vision.quality import assess_quality  # noqa: E402
from vision.types import DecodedPhoto  # noqa: E402


def decoded_sets(scenes: int) -> dict[str, list[DecodedPhoto]]:
    """The harness photos of each kind, decoded once (decoding is not what is timed)."""
    factories = make_factories(False, scenes=scenes, spares=1)
    return {
        kind: [decode_for_grading(f.make(i), 192) for i in range(scenes)]
        for kind, f in factories.items()
    }


def time_set(photos: list[DecodedPhoto], rounds: int) -> dict[str, Any]:
    """Median over ``rounds`` of the mean CPU and wall milliseconds per gate call."""
    for photo in photos[:2]:  # warm-up: OpenCV's and numpy's first-call costs
        assess_quality(photo)
    cpu, wall = [], []
    for _ in range(rounds):
        c0, t0 = time.process_time(), time.perf_counter()
        for photo in photos:
            assess_quality(photo)
        wall.append((time.perf_counter() - t0) * 1000 / len(photos))
        cpu.append((time.process_time() - c0) * 1000 / len(photos))
    shape = photos[0].rgb.shape
    return {
        "photos": len(photos),
        "decoded_size": [int(shape[1]), int(shape[0])],
        "cpu_ms_per_photo": round(statistics.median(cpu), 2),
        "wall_ms_per_photo": round(statistics.median(wall), 2),
        "wall_ms_per_round": [round(v, 2) for v in wall],
    }


def _median_cpu_ms(run: Callable[[int], object], n: int, rounds: int) -> float:
    """Median over ``rounds`` of the mean thread CPU ms of ``run(i)`` for i < n."""
    per_round = []
    for _ in range(rounds):
        c0 = time.thread_time()
        for i in range(n):
            run(i)
        per_round.append((time.thread_time() - c0) * 1000 / n)
    return round(statistics.median(per_round), 3)


def time_parts(photos: list[DecodedPhoto], rounds: int) -> dict[str, float]:
    """CPU ms per photo of each part of ``quality.measure``, from the images it reads."""
    work = [quality.working_copy(p.rgb) for p in photos]
    small = [quality_mask.working_copy(w, quality_mask.MASK_LONG_SIDE) for w in work]
    grey = [cv2.cvtColor(w, cv2.COLOR_RGB2GRAY) for w in work]
    masks = [quality_mask.item_mask(s) for s in small]
    parts: dict[str, Callable[[int], object]] = {
        "whole gate (assess_quality)": lambda i: assess_quality(photos[i]),
        "512 px working copy": lambda i: quality.working_copy(photos[i].rgb),
        "grey and brightest channel": lambda i: (
            cv2.cvtColor(work[i], cv2.COLOR_RGB2GRAY),
            quality_light.brightest_channel(work[i]),
        ),
        "128 px mask copy": lambda i: quality_mask.working_copy(
            work[i], quality_mask.MASK_LONG_SIDE
        ),
        "item mask": lambda i: quality_mask.item_mask(small[i]),
        "framing": lambda i: quality_mask.framing(masks[i], small[i]),
        "sharpness": lambda i: quality._gray_sharpness(grey[i]),
    }
    for run in parts.values():  # warm-up
        run(0)
    return {name: _median_cpu_ms(run, len(photos), rounds) for name, run in parts.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=12, help="photos per kind")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cv-threads", type=int, default=None, help="default: OpenCV's own")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/gate_speed.json")
    parser.add_argument("--parts", action="store_true", help="time each part of the gate too")
    args = parser.parse_args()
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)

    sets = decoded_sets(args.scenes)
    results = {kind: time_set(photos, args.rounds) for kind, photos in sets.items()}
    for kind, r in results.items():
        w, h = r["decoded_size"]
        print(
            f"{kind:7s} decoded {w} x {h}: {r['cpu_ms_per_photo']:6.2f} ms CPU, "
            f"{r['wall_ms_per_photo']:6.2f} ms wall per photo ({r['photos']} photos, "
            f"median of {args.rounds} rounds)"
        )
    if args.parts:
        for kind, photos in sets.items():
            results[kind]["parts_cpu_ms_per_photo"] = parts = time_parts(photos, args.rounds)
            for name, ms in parts.items():
                print(f"{kind:7s} {name:30s} {ms:6.2f} ms CPU per photo")
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": args.rounds,
        "opencv_threads": cv2.getNumThreads(),
        "results": results,
        "machine": machine_info(),
    }
    print(f"wrote {write_json(args.out, record)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
