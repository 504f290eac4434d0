"""The copy check's descriptor matching: OpenCV's brute-force Hamming matcher (what the
service used) against ``vision.hamming`` (what it uses), on the service bench's photos.

    python -m benchmarks.hamming_speed [--scenes var/bench-scenes] [--photos 24]

Each of ``--photos`` rendered photos of the shop's one SKU (``benchmarks/harness/scenes.py``)
is matched against every other one's stored features, as ``copyverify.transform`` does
(two nearest per query descriptor, then Lowe's ratio test), and described as
``copydetect.words_of`` does (the nearest of 256 visual words). Both matchers run on the
same pairs, alternating in rounds, one OpenCV thread (as the service runs it). Every
pair's answers are compared: the run fails if one differs. Writes
``benchmarks/results/hamming_speed.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.copy_verify_service import _photos
from benchmarks.harness.common import machine_info, write_json
from vision import copydetect, copyverify, hamming

RESULTS = Path("benchmarks/results/hamming_speed.json")
_MATCHER = cv2.BFMatcher(cv2.NORM_HAMMING)


def _opencv_good(query: np.ndarray, stored: np.ndarray) -> tuple[list[int], list[int]]:
    pairs = _MATCHER.knnMatch(query, stored, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < copyverify.RATIO * p[1].distance]
    return [m.queryIdx for m in good], [m.trainIdx for m in good]


def _numpy_good(query: np.ndarray, stored: np.ndarray) -> tuple[list[int], list[int]]:
    first, d1, d2 = hamming.two_nearest(query, stored)
    good = np.flatnonzero(d1 < copyverify.RATIO * d2.astype(np.float64))
    return good.tolist(), first[good].tolist()


def _opencv_words(desc: np.ndarray, centres: np.ndarray) -> list[int]:
    return [m.trainIdx for m in sorted(_MATCHER.match(desc, centres), key=lambda m: m.queryIdx)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", type=Path, default=Path("var/bench-scenes"))
    ap.add_argument("--photos", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    photos = _photos(args.scenes, args.photos)
    if len(photos) < 2:
        raise SystemExit(f"need at least 2 photos under {args.scenes} (run `returnlens bench`)")
    desc = [copydetect.local_features(p).descriptors for p in photos]
    lanes = [hamming.lanes(d) for d in desc]
    pairs = [(i, j) for i in range(len(desc)) for j in range(len(desc)) if i != j]
    for i, j in pairs:  # the same answers, or no figures
        if _opencv_good(desc[i], desc[j]) != _numpy_good(lanes[i], lanes[j]):
            raise SystemExit(f"photos {i} and {j}: the matchers disagree")
    vocab = copydetect.vocabulary()
    centres = np.ascontiguousarray(vocab.centres).view(np.uint8).reshape(-1, 32)
    for d in desc:
        if _opencv_words(d, centres) != copydetect.words_of(d, vocab).tolist():
            raise SystemExit("the nearest words disagree")
    ms: dict[str, list[float]] = {k: [] for k in ("opencv", "numpy", "opencv_words", "numpy_words")}
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", flush=True)
        for name, fn in (("opencv", _opencv_good), ("numpy", _numpy_good)):
            side = desc if name == "opencv" else lanes
            t = time.perf_counter()
            for i, j in pairs:
                fn(side[i], side[j])
            ms[name].append((time.perf_counter() - t) / len(pairs) * 1000)
        t = time.perf_counter()
        for d in desc:
            _opencv_words(d, centres)
        ms["opencv_words"].append((time.perf_counter() - t) / len(desc) * 1000)
        t = time.perf_counter()
        for d in desc:
            copydetect.words_of(d, vocab)
        ms["numpy_words"].append((time.perf_counter() - t) / len(desc) * 1000)
    medians = {k: round(float(np.median(v)), 3) for k, v in ms.items()}
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_info(),
        "photos": len(photos),
        "pairs": len(pairs),
        "descriptors_median": float(np.median([len(d) for d in desc])),
        "same_answers": True,
        "ms_median": medians,  # matching: per pair of photos; words: per photo
        "ms_rounds": {k: [round(x, 3) for x in v] for k, v in ms.items()},
    }
    write_json(args.out, result)
    for k, v in medians.items():
        print(f"{k}: {v} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
