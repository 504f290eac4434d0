"""The copy check's verification on the service's common upload: a new photo of a SKU
that many shoppers returned, against 12 stored photos of it (none a copy).

    python -m benchmarks.copy_verify_service [--scenes var/bench-scenes] [--photos 13]

Each of ``--photos`` distinct rendered photos of the shop's one SKU (the service bench's
scenes: ``benchmarks/harness/scenes.py``, PNG under ``var/bench-scenes/``) is the query
once, the others its candidates (stored form). Before: ``verify_query`` on each
candidate, nearest first, stopping at ``CONCLUSIVE`` (``verified_copies`` until the dense
budget). After: ``copyverify.best_verified``. Prints ms per query photo.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from vision import copydetect, copyverify


def _photos(root: Path, count: int) -> list[np.ndarray]:
    out = []
    for path in sorted(root.rglob("*.png"))[:count]:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None:
            out.append(np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return out


def _every(query: copydetect.CopyDescriptor, stored: list[copydetect.LocalFeatures]) -> None:
    best = 0.0
    for s in stored:
        if best >= copyverify.CONCLUSIVE:
            break
        best = max(best, copyverify.verify_query(query, s))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", type=Path, default=Path("var/bench-scenes"))
    ap.add_argument("--photos", type=int, default=13)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    photos = _photos(args.scenes, args.photos)
    described = [copydetect.describe(p) for p in photos]
    stored = [copydetect.LocalFeatures.from_bytes(d.local.to_bytes()) for d in described]
    jobs = [(d, stored[:k] + stored[k + 1 :]) for k, d in enumerate(described)]
    timings: dict[str, list[float]] = {"every candidate dense": [], "dense budget": []}
    for _ in range(args.repeats):
        for name, fn in (
            ("every candidate dense", _every),
            ("dense budget", copyverify.best_verified),
        ):
            t = time.perf_counter()
            for d, others in jobs:
                fn(d, others)
            timings[name].append((time.perf_counter() - t) / len(jobs) * 1000)
    checked = [copyverify.verify_candidates(d, others) for d, others in jobs]
    fitted = np.mean([len(set(c.ranked)) for c in checked])
    print(f"{len(jobs)} queries x {len(jobs) - 1} candidates; budget {copyverify.DENSE_BUDGET}")
    print(f"candidates with >= {copyverify.MIN_INLIERS} inliers per query: {fitted:.1f}")
    print(f"dense checks per query: {np.mean([c.dense_checks for c in checked]):.1f}")
    print(f"best score: {max(max(c.scores) for c in checked):.3f}")
    for name, ms in timings.items():
        print(f"{name}: {np.median(ms):.2f} ms per query (min {min(ms):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
