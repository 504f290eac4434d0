"""Milliseconds per photo of the photo-quality gate (``vision.quality.assess_quality``).

The service's two upload kinds, from the benchmark harness (benchmarks/harness/inputs.py):
a 12-megapixel phone JPEG and a 1600 px browser downscale, each decoded the way the
service decodes (``decode_for_grading``: DCT-downscaled, so the 1600 px JPEG arrives as
800 x 600). Decoding is done once, outside the timing; each round times the gate on every
photo of a set, and the median over rounds of the mean per photo is reported: wall time,
and CPU time of the whole process (OpenCV's worker threads, spinning while idle, count
too, so CPU can exceed wall; ``--cv-threads 1`` gives the single-threaded cost).

    python benchmarks/gate_speed.py [--scenes 12] [--rounds 7] [--cv-threads N]

Prints the figures and writes benchmarks/results/gate_speed.json (with the date and the
machine, ``benchmarks.harness.common.machine_info``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness.common import machine_info, write_json  # noqa: E402
from benchmarks.harness.inputs import make_factories  # noqa: E402
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=12, help="photos per kind")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cv-threads", type=int, default=None, help="default: OpenCV's own")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/gate_speed.json")
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
