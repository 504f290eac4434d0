"""The copy check's descriptor matching, three ways on the service bench's photos:
OpenCV's brute-force Hamming matcher (what the service first used), the numpy kernel that
replaced it (kept here: four 64-bit lanes of every pair XORed and counted), and
``vision.hamming`` (faiss's ``knn_hamming``: what the service uses now).

    python -m benchmarks.hamming_speed [--scenes var/bench-scenes] [--photos 24]

Each of ``--photos`` rendered photos of the shop's one SKU (``benchmarks/harness/scenes.py``)
is matched against every other one's stored features, as ``copyverify.transform`` does
(two nearest per query descriptor, then Lowe's ratio test), and described as
``copydetect.words_of`` does (the nearest of 256 visual words). The matchers run on the
same pairs, alternating in rounds, one thread each (as the service runs them). Every
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


def _lanes(descriptors: np.ndarray) -> np.ndarray:
    """(4, n) uint64: each 64-bit lane of the descriptors contiguous (the numpy kernel's
    layout, made once per photo as the service did)."""
    return np.ascontiguousarray(np.ascontiguousarray(descriptors).view(np.uint64).T)


def _lane_distances(query: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """The numpy kernel: (n, m) distances, one broadcast XOR and popcount per lane."""
    n, m = query.shape[1], stored.shape[1]
    xor, bits = np.empty((n, m), np.uint64), np.empty((n, m), np.uint8)
    out = np.zeros((n, m), np.uint16)
    for k in range(len(query)):
        np.bitwise_xor(query[k][:, None], stored[k][None, :], out=xor)
        np.bitwise_count(xor, out=bits)
        out += bits
    return out


def _numpy_good(query: np.ndarray, stored: np.ndarray) -> tuple[list[int], list[int]]:
    dist = _lane_distances(query, stored)
    rows = np.arange(dist.shape[0])
    first = dist.argmin(axis=1)
    d1 = dist[rows, first]
    dist[rows, first] = np.iinfo(np.uint16).max
    good = np.flatnonzero(d1 < copyverify.RATIO * dist.min(axis=1).astype(np.float64))
    return good.tolist(), first[good].tolist()


def _numpy_words(lanes: np.ndarray, centres: np.ndarray) -> list[int]:
    return [int(i) for i in _lane_distances(lanes, centres).argmin(axis=1)]


def _faiss_good(query: np.ndarray, stored: np.ndarray) -> tuple[list[int], list[int]]:
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
    lanes = [_lanes(d) for d in desc]
    pairs = [(i, j) for i in range(len(desc)) for j in range(len(desc)) if i != j]
    for i, j in pairs:  # the same answers, or no figures
        expected = _opencv_good(desc[i], desc[j])
        if expected != _numpy_good(lanes[i], lanes[j]) or expected != _faiss_good(desc[i], desc[j]):
            raise SystemExit(f"photos {i} and {j}: the matchers disagree")
    vocab = copydetect.vocabulary()
    centres, centre_lanes = vocab.centres, _lanes(vocab.centres)
    for d, lane in zip(desc, lanes, strict=True):
        expected_words = _opencv_words(d, centres)
        if expected_words != _numpy_words(lane, centre_lanes) or expected_words != (
            copydetect.words_of(d, vocab).tolist()
        ):
            raise SystemExit("the nearest words disagree")
    matchers = {"opencv": (_opencv_good, desc), "numpy": (_numpy_good, lanes),
                "faiss": (_faiss_good, desc)}  # fmt: skip
    words = {"opencv_words": (lambda d: _opencv_words(d, centres), desc),
             "numpy_words": (lambda d: _numpy_words(d, centre_lanes), lanes),
             "faiss_words": (lambda d: copydetect.words_of(d, vocab), desc)}  # fmt: skip
    ms: dict[str, list[float]] = {k: [] for k in (*matchers, *words)}
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", flush=True)
        for name, (fn, side) in matchers.items():
            t = time.perf_counter()
            for i, j in pairs:
                fn(side[i], side[j])
            ms[name].append((time.perf_counter() - t) / len(pairs) * 1000)
        for name, (one, side) in words.items():
            t = time.perf_counter()
            for d in side:
                one(d)
            ms[name].append((time.perf_counter() - t) / len(desc) * 1000)
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
