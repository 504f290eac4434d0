"""Reused-photo detection under edits: pHash alone vs the copy-detection signal.

    python -m benchmarks.copy_detection                  # the benchmark (renders once, cached)
    python -m benchmarks.copy_detection --fit-vocabulary # refit vision/copydetect_vocab.npz

Held-out set: ``vision.synth`` renders (``--variety wide``, 320 px, seed 2026, two photos
of each physical item, 24 SKUs: every SKU has hundreds of photos), cached under
``--cache``. Photos 0..299 are the originals; photos 300..10,299 are the 10,000 other
photos; all 10,300 are stored in the index. Photos 10,300..10,599 are never stored:
their edited versions are the negatives (a photo nobody uploaded before).

Each original and each negative is edited in every way of ``EDITS`` (crop to 70 % of the
area, rotation by 6-10 degrees either way, brightness and contrast +-30 %, JPEG quality
50, an added border, a screenshot: the photo smaller inside a phone-app frame, and all
of crop + rotation + colour + border + JPEG 50 at once). A query is answered by each
signal as the service would:

* pHash: the nearest stored hash, a match when its Hamming distance <= 6 (the policy's
  ``reused_photo.max_hamming``);
* copy signal (``vision.copydetect``): the ``CANDIDATES`` stored vectors nearest to the
  query's, verified as the service does (``copyverify.verify_candidates``: a similarity
  transform most keypoint matches agree on for every candidate, then the dense agreement
  of the whole overlap for the ``DENSE_BUDGET`` fits with the most inliers, here without
  the service's early stop, so that a wrong candidate is scored even after the copy);
  the best agreement, a match when >= the policy's ``reused_photo.min_agreement`` (what
  the service flags). The threshold this set would choose (the smallest on a 0.05 grid
  with no more than 0.1 % false matches, how the policy's was set) is reported beside it:
  with the dense budget fewer wrong candidates are scored at all, so it can come out
  lower than the policy's, a change for the policy's owner to make, not this benchmark.

The inlier counts of the original's fit and of the best wrong candidate's are recorded
too (``dense_budget`` in the json): how many dense checks reach the copy is what
``copyverify.DENSE_BUDGET`` is chosen from.

Top-1 retrieval: the query's own original is the match. False-match rate: the share of
queries (edited negatives, and edited originals whose match is another photo) that match
a photo that is not their original. Other photos of the same SKU, and the other photo
of the same physical item, are in the index: matching them is a false match.

Writes ``benchmarks/results/copy_detection.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.harness.common import machine_info, write_json
from serving.policy import load_policy
from vision import copydetect, copyverify
from vision.phash import phash

RESULTS = Path("benchmarks/results")
SEED = 2026
ORIGINALS, OTHERS, NEGATIVES = 300, 10_000, 300
SIZE = 320
CANDIDATES = 8  # as serving/services/copy_index.py
PART_CANDIDATES = 4  # as serving/services/copy_index.py
STORED_AT_SCALE = 100_000
NO_STOP = 2.0  # conclusive score for verify_candidates: above any, so no early stop
PHASH_MAX = 6
TARGET_FMR = 0.001


# ----------------------------------------------------------------------------- photos
def _render_chunk(job: tuple[str, int, int, int]) -> list[dict[str, Any]]:
    from vision.synth.dataset import SynthConfig, render_record

    root, seed, start, stop = job
    cfg = SynthConfig(
        count=1_000_000,
        seed=seed,
        image_size=SIZE,
        variety="wide",
        photos_per_item=2,
        dock_share=0.0,  # shopper photos: dock scenes share the dock's fixed backdrop
    )
    out = []
    for i in range(start, stop):
        path = Path(root) / f"{i:06d}.jpg"
        record, data, _ = render_record(cfg, i)
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        out.append({"i": i, "sku": record["sku"], "item": record["item_id"]})
    return out


def rendered(cache: Path, seed: int, count: int, workers: int = 2) -> list[dict[str, Any]]:
    """Records of photos 0..count-1 of ``seed`` (rendered once into ``cache``)."""
    root = cache / f"shopper-seed{seed}"
    root.mkdir(parents=True, exist_ok=True)
    index = root / f"index-{count}.json"
    if index.exists():
        return list(json.loads(index.read_text()))
    chunks = [(str(root), seed, a, min(a + 250, count)) for a in range(0, count, 250)]
    records: list[dict[str, Any]] = []
    with ProcessPoolExecutor(workers) as pool:
        for part in pool.map(_render_chunk, chunks):
            records += part
    index.write_text(json.dumps(records))
    return records


def load(cache: Path, seed: int, i: int) -> np.ndarray:
    bgr = cv2.imread(str(cache / f"shopper-seed{seed}" / f"{i:06d}.jpg"), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"photo {i} of seed {seed} is not in {cache}")
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.uint8)


# ----------------------------------------------------------------------------- edits
def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [1, quality])
    back = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert ok and back is not None
    return np.asarray(cv2.cvtColor(back, cv2.COLOR_BGR2RGB))


def crop(rgb: np.ndarray, rng: np.random.Generator, area: float = 0.70) -> np.ndarray:
    h, w = rgb.shape[:2]
    aspect = float(rng.uniform(0.85, 1.18))
    cw = min(w, round(w * np.sqrt(area * aspect)))
    ch = min(h, round(h * np.sqrt(area / aspect)))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return rgb[y0 : y0 + ch, x0 : x0 + cw].copy()


def rotate(
    rgb: np.ndarray, rng: np.random.Generator, low: float = 6, high: float = 10
) -> np.ndarray:
    h, w = rgb.shape[:2]
    angle = float(rng.uniform(low, high)) * float(rng.choice([-1, 1]))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return np.asarray(cv2.warpAffine(rgb, m, (w, h), borderMode=cv2.BORDER_CONSTANT), np.uint8)


def colour(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    contrast = 1.0 + 0.3 * float(rng.choice([-1, 1]))
    brightness = 1.0 + 0.3 * float(rng.choice([-1, 1]))
    x = rgb.astype(np.float32)
    out = ((x - x.mean()) * contrast + x.mean()) * brightness
    return np.asarray(out.clip(0, 255), np.uint8)


def border(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    top, bottom, left, right = (int(rng.uniform(0.06, 0.2) * s) for s in (h, h, w, w))
    value = [int(v) for v in rng.integers(0, 256, 3)]
    out = cv2.copyMakeBorder(rgb, top, bottom, left, right, cv2.BORDER_CONSTANT, value=value)
    return np.asarray(out)


def screenshot(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photo shown in a phone app (720 x 1280): status bar, title bar, text, buttons."""
    canvas = np.full((1280, 720, 3), 246, np.uint8)
    bar = tuple(int(v) for v in rng.integers(20, 200, 3))
    cv2.rectangle(canvas, (0, 0), (720, 60), (30, 30, 30), -1)
    cv2.putText(canvas, "9:41", (24, 42), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    cv2.rectangle(canvas, (0, 60), (720, 170), bar, -1)
    cv2.putText(canvas, "Photos", (40, 135), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (255, 255, 255), 3)
    h, w = rgb.shape[:2]
    width = int(rng.uniform(0.75, 0.95) * 720)
    height = round(h * width / w)
    photo = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    x0, y0 = (720 - width) // 2, 200
    canvas[y0 : y0 + height, x0 : x0 + width] = photo
    y = y0 + height + 60
    for k in range(4):
        cv2.putText(canvas, f"Shared {k + 2} days ago", (40, y), cv2.FONT_HERSHEY_SIMPLEX,
                    0.9, (80, 80, 80), 2)  # fmt: skip
        y += 50
    cv2.rectangle(canvas, (0, 1180), (720, 1280), (235, 235, 235), -1)
    for k in range(4):
        cv2.circle(canvas, (90 + 180 * k, 1230), 22, (120, 120, 120), 3)
    return _jpeg(canvas, 85)


def combined(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = crop(rgb, rng, area=0.8)
    out = rotate(out, rng, 3, 6)
    out = colour(out, rng)
    out = border(out, rng)
    return _jpeg(out, 50)


EDITS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "re-encode (q90)": lambda x, rng: _jpeg(x, 90),
    "crop 70% area": lambda x, rng: _jpeg(crop(x, rng), 90),
    "rotate 6-10 deg": lambda x, rng: _jpeg(rotate(x, rng), 90),
    "brightness/contrast +-30%": lambda x, rng: _jpeg(colour(x, rng), 90),
    "JPEG q50": lambda x, rng: _jpeg(x, 50),
    "border": lambda x, rng: _jpeg(border(x, rng), 90),
    "screenshot": screenshot,
    "combined": combined,
}


# ----------------------------------------------------------------------------- vocabulary
def fit_vocabulary(cache: Path, seed: int = 11, photos: int = 400) -> copydetect.Vocabulary:
    """Word centres: k-means on ORB descriptors (bits as 0/1 floats, centres rounded back
    to bits) of ``photos`` renders of another seed than the benchmark's; idf over those
    photos and their edits; projection: the principal axes of their word histograms."""
    records = rendered(cache, seed, photos)
    rng = np.random.default_rng(0)
    images = [load(cache, seed, r["i"]) for r in records]
    edited = [fn(x, rng) for x in images[: photos // 2] for fn in EDITS.values()]
    feats = [copydetect.local_features(x) for x in [*images, *edited]]
    desc = np.concatenate([f.descriptors for f in feats[: len(images)]])
    sample = desc[rng.choice(len(desc), min(len(desc), 60_000), replace=False)]
    bits = np.unpackbits(sample, axis=1).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 25, 1e-3)
    cv2.setRNGSeed(0)
    _, _, centres = cv2.kmeans(  # type: ignore[call-overload]
        bits, copydetect.WORDS, None, criteria, 2, cv2.KMEANS_PP_CENTERS
    )
    packed = np.packbits(centres > 0.5, axis=1)
    flat = copydetect.Vocabulary(
        centres=np.ascontiguousarray(packed),
        idf=np.ones(copydetect.WORDS, np.float32),
        mean=np.zeros(copydetect.WORDS, np.float32),
        projection=np.eye(copydetect.WORDS, copydetect.DIM, dtype=np.float32),
    )
    words = [copydetect.words_of(f.descriptors, flat) for f in feats]
    df = np.zeros(copydetect.WORDS)
    for w in words:
        df[np.unique(w)] += 1
    idf = np.log((len(words) + 1) / (df + 1)).astype(np.float32) + 1e-3
    weighted = copydetect.Vocabulary(flat.centres, idf, flat.mean, flat.projection)
    hists = np.stack([copydetect.bow(f.descriptors, weighted) for f in feats])
    mean = hists.mean(axis=0)
    _, _, vt = np.linalg.svd(hists - mean, full_matrices=False)
    return copydetect.Vocabulary(
        flat.centres, idf, mean.astype(np.float32), vt[: copydetect.DIM].T.astype(np.float32)
    )


# ----------------------------------------------------------------------------- benchmark
def _describe_chunk(job: tuple[str, int, list[int]]) -> list[tuple[np.ndarray, bytes, int]]:
    cache, seed, ids = job
    out = []
    for i in ids:
        rgb = load(Path(cache), seed, i)
        d = copydetect.describe(rgb)
        out.append((d.vector, d.local.to_bytes(), phash(rgb)))
    return out


def _describe_all(cache: Path, ids: list[int], workers: int) -> list[tuple[np.ndarray, bytes, int]]:
    chunks = [(str(cache), SEED, ids[a : a + 200]) for a in range(0, len(ids), 200)]
    out: list[tuple[np.ndarray, bytes, int]] = []
    with ProcessPoolExecutor(workers) as pool:
        for part in pool.map(_describe_chunk, chunks):
            out += part
            _progress("stored photos described", len(out), len(ids))
    return out


def _progress(what: str, done: int, total: int) -> None:
    """One line on stderr per chunk: the run takes minutes."""
    print(f"{what}: {done}/{total}", file=sys.stderr, flush=True)


def _query_chunk(job: tuple[str, list[tuple[int, str]]]) -> list[dict[str, Any]]:
    """Edit, describe and answer queries against the stored set (module globals)."""
    cache, queries = job
    out = []
    for i, edit in queries:
        rng = np.random.default_rng([SEED, i, list(EDITS).index(edit)])
        rgb = EDITS[edit](load(Path(cache), SEED, i), rng)
        h = phash(rgb)
        dist = np.bitwise_count(_STORED["phash"] ^ np.uint64(h))
        p_at = int(dist.argmin())
        d = copydetect.describe(rgb)
        qv = copydetect.query_vectors(d)
        top = copydetect.search(_STORED["vectors"], qv, CANDIDATES, PART_CANDIDATES)
        unfloored = copydetect.search(
            _STORED["vectors"], qv, CANDIDATES, PART_CANDIDATES, floor=-np.inf
        )
        stored = [copydetect.LocalFeatures.from_bytes(_STORED["local"][j]) for j in top]
        checked = copyverify.verify_candidates(d, stored, _STORED["budget"], NO_STOP)
        scores = list(checked.scores)
        rank_of_own = [int(j) for j in top].index(i) if i in set(int(j) for j in top) else -1
        wrong_at = [k for k in range(len(top)) if int(top[k]) != i]
        worst = max(wrong_at, key=lambda k: checked.inliers[k], default=-1)
        best = int(np.argmax(scores)) if scores else 0
        own_score = scores[rank_of_own] if rank_of_own >= 0 else 0
        wrong = [s for j, s in zip(top, scores, strict=True) if int(j) != i]
        out.append(
            {
                "i": i,
                "edit": edit,
                "own_similarity": float((qv @ _STORED["vectors"][i]).max())
                if i < len(_STORED["vectors"])
                else None,
                "own_unfloored": i in set(int(j) for j in unfloored),
                "candidates": len(top),
                "candidates_unfloored": len(unfloored),
                "phash_at": p_at,
                "phash_distance": int(dist[p_at]),
                "phash_wrong_min": int(np.delete(dist, i).min())
                if i < len(dist)
                else int(dist.min()),
                "candidate_rank": rank_of_own,
                "best": int(top[best]) if scores else -1,
                "best_score": float(scores[best]) if scores else 0.0,
                "own_score": float(own_score),
                "wrong_max": float(max(wrong, default=0.0)),
                "own_inliers": checked.inliers[rank_of_own] if rank_of_own >= 0 else 0,
                "own_dense_rank": checked.ranked.index(rank_of_own)
                if rank_of_own in checked.ranked
                else -1,
                "wrong_inliers_max": checked.inliers[worst] if worst >= 0 else 0,
                "wrong_inliers_at": int(top[worst]) if worst >= 0 else -1,
                "fits": len(checked.ranked),
                "dense_checks": checked.dense_checks,
            }
        )
    return out


_STORED: dict[str, Any] = {}


def _timed(fn: Callable[[], object], repeats: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats * 1000


def _rate(hits: int, n: int) -> float:
    return round(hits / n, 4) if n else 0.0


def evaluate(rows: list[dict[str, Any]], threshold: float) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for edit in EDITS:
        pos = [r for r in rows if r["edit"] == edit and r["i"] < ORIGINALS + OTHERS]
        neg = [r for r in rows if r["edit"] == edit and r["i"] >= ORIGINALS + OTHERS]
        n = len(pos) + len(neg)
        table[edit] = {
            "queries": len(pos),
            "negatives": len(neg),
            "phash_top1": _rate(
                sum(r["phash_at"] == r["i"] and r["phash_distance"] <= PHASH_MAX for r in pos),
                len(pos),
            ),
            "phash_false_match_rate": _rate(
                sum(r["phash_wrong_min"] <= PHASH_MAX for r in pos)
                + sum(r["phash_distance"] <= PHASH_MAX for r in neg),
                n,
            ),
            "copy_candidate_recall": _rate(sum(r["candidate_rank"] >= 0 for r in pos), len(pos)),
            "copy_top1": _rate(
                sum(r["best"] == r["i"] and r["best_score"] >= threshold for r in pos), len(pos)
            ),
            "copy_false_match_rate": _rate(
                sum(r["wrong_max"] >= threshold for r in pos)
                + sum(r["best_score"] >= threshold for r in neg),
                n,
            ),
        }
    return table


def choose_threshold(rows: list[dict[str, Any]]) -> float:
    """The smallest agreement on a 0.05 grid with at most TARGET_FMR false matches over
    all queries (a false match is costly: a person looks at a genuine return)."""
    wrong = np.array(
        [r["wrong_max"] if r["i"] < ORIGINALS + OTHERS else r["best_score"] for r in rows]
    )
    for t in np.arange(0.5, 1.0, 0.05):
        if np.mean(wrong >= t) <= TARGET_FMR:
            return round(float(t), 2)
    return 1.0


def run(
    cache: Path, workers: int, out_dir: Path, budget: int = copyverify.DENSE_BUDGET
) -> dict[str, Any]:
    import multiprocessing

    started = time.perf_counter()
    total = ORIGINALS + OTHERS + NEGATIVES
    records = rendered(cache, SEED, total, workers)
    stored_ids = list(range(ORIGINALS + OTHERS))
    described = _describe_all(cache, stored_ids, workers)
    _STORED["vectors"] = np.stack([d[0] for d in described]).astype(np.float32)
    _STORED["local"] = [d[1] for d in described]
    _STORED["phash"] = np.array([d[2] for d in described], np.uint64)
    _STORED["budget"] = budget
    queries = [(i, e) for i in range(ORIGINALS) for e in EDITS]
    queries += [(i, e) for i in range(ORIGINALS + OTHERS, total) for e in EDITS]
    chunks = [(str(cache), queries[a : a + 100]) for a in range(0, len(queries), 100)]
    rows: list[dict[str, Any]] = []
    ctx = multiprocessing.get_context("fork")  # the workers share _STORED
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        for part in pool.map(_query_chunk, chunks):
            rows += part
            _progress("queries answered", len(rows), len(queries))
    (cache / "rows.json").write_text(json.dumps(rows))
    threshold = load_policy().spec.reused_photo.min_agreement
    table = evaluate(rows, threshold)
    same_sku = _same_sku_pairs(records, rows)
    dense = _dense_budget(records, rows, budget)
    floor = _search_floor(rows)

    # Costs, one process.
    small = load(cache, SEED, 0)
    large = cv2.resize(small, (1600, 1200), interpolation=cv2.INTER_CUBIC)
    vocab = copydetect.vocabulary()
    describe_small = _timed(lambda: copydetect.describe(small, vocab), 30)
    describe_large = _timed(lambda: copydetect.describe(large, vocab), 20)
    phash_large = _timed(lambda: phash(large), 20)
    a = copydetect.describe(EDITS["combined"](small, np.random.default_rng(1)), vocab).local
    b = copydetect.LocalFeatures.from_bytes(_STORED["local"][0])
    verify_ms = _timed(lambda: copyverify.verify(a, b), 50)
    before_ms, after_ms = _query_verification_ms(cache, vocab, budget)
    base = _STORED["vectors"]
    rng = np.random.default_rng(0)
    big = base[rng.integers(0, len(base), STORED_AT_SCALE)] + rng.normal(
        0, 0.05, (STORED_AT_SCALE, copydetect.DIM)
    ).astype(np.float32)
    big = np.ascontiguousarray(big / np.linalg.norm(big, axis=1, keepdims=True), np.float32)
    q = base[0]
    parts = copydetect.query_vectors(
        copydetect.describe(EDITS["screenshot"](small, np.random.default_rng(2)), vocab)
    )
    search_ms = _timed(lambda: copydetect.nearest(big, q, CANDIDATES), 200)
    search_parts_ms = _timed(
        lambda: copydetect.search(big, parts, CANDIDATES, PART_CANDIDATES), 100
    )
    hashes = rng.integers(0, 2**63, STORED_AT_SCALE, dtype=np.int64).astype(np.uint64)
    phash_search_ms = _timed(lambda: int(np.bitwise_count(hashes ^ np.uint64(12345)).argmin()), 200)
    local_bytes = float(np.mean([len(x) for x in _STORED["local"]]))

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(),
        "held_out": {
            "generator": f"vision.synth wide, seed {SEED}, {SIZE} px, 2 photos per item",
            "originals": ORIGINALS,
            "other_photos": OTHERS,
            "negatives": NEGATIVES,
            "skus": len({r["sku"] for r in records}),
        },
        "signal": {
            "features": copydetect.FEATURES,
            "side_px": copydetect.SIDE,
            "words": copydetect.WORDS,
            "dim": copydetect.DIM,
            "candidates": CANDIDATES,
            "content_box_candidates": PART_CANDIDATES,
            "min_inliers": copyverify.MIN_INLIERS,
            "threshold_agreement": threshold,
            "threshold_for_target_fmr": choose_threshold(rows),
            "phash_max_hamming": PHASH_MAX,
        },
        "per_edit": table,
        "overall": _overall(rows, threshold),
        "same_sku": same_sku,
        "dense_budget": dense,
        "search_floor": floor,
        "cost": {
            "describe_ms_320px": round(describe_small, 2),
            "describe_ms_1600x1200": round(describe_large, 2),
            "phash_ms_1600x1200": round(phash_large, 2),
            "verify_ms_per_candidate": round(verify_ms, 3),
            "verify_ms_per_query_every_candidate_dense": round(before_ms, 2),
            "verify_ms_per_query_dense_budget": round(after_ms, 2),
            "search_ms_at_100k": round(search_ms, 3),
            "search_ms_at_100k_with_parts": round(search_parts_ms, 3),
            "query_parts": len(parts),
            "phash_search_ms_at_100k": round(phash_search_ms, 3),
            "stored_bytes_vector": copydetect.DIM * 2,
            "stored_bytes_local_mean": round(local_bytes),
        },
        "runtime_s": round(time.perf_counter() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "copy_detection.json", result)
    (out_dir / "copy_detection.md").write_text(markdown(result))
    return result


def _query_verification_ms(
    cache: Path, vocab: copydetect.Vocabulary, budget: int, queries: int = 20
) -> tuple[float, float]:
    """Verification of all of a query's candidates, per query: every candidate checked
    densely (``verify_query`` on each, as before ``DENSE_BUDGET``) vs ``verify_candidates``.
    The queries are never-stored photos (no copy, so no early stop: the common upload)."""
    jobs = []
    for i in range(ORIGINALS + OTHERS, ORIGINALS + OTHERS + queries):
        d = copydetect.describe(load(cache, SEED, i), vocab)
        top = copydetect.search(
            _STORED["vectors"], copydetect.query_vectors(d), CANDIDATES, PART_CANDIDATES
        )
        jobs.append((d, [copydetect.LocalFeatures.from_bytes(_STORED["local"][j]) for j in top]))

    def every() -> None:
        for d, stored in jobs:
            [copyverify.verify_query(d, s) for s in stored]

    def budgeted() -> None:
        for d, stored in jobs:
            copyverify.verify_candidates(d, stored, budget)

    return _timed(every, 3) / queries, _timed(budgeted, 3) / queries


def _dense_budget(
    records: list[dict[str, Any]], rows: list[dict[str, Any]], budget: int
) -> dict[str, Any]:
    """What ``copyverify.DENSE_BUDGET`` is chosen from: where the original's fit comes in
    the dense order (most inliers first) among a copy's candidates, and how many inliers
    the originals' fits and the best wrong candidates' (by kind) have."""
    sku = {r["i"]: r["sku"] for r in records}
    item = {r["i"]: r["item"] for r in records}
    pos = [r for r in rows if r["i"] < ORIGINALS + OTHERS and r["candidate_rank"] >= 0]
    ranks = np.array([r["own_dense_rank"] for r in pos])
    ratios = [r["own_inliers"] / r["wrong_inliers_max"] for r in pos if r["wrong_inliers_max"]]
    wrong: dict[str, list[int]] = {"same_item": [], "same_sku": [], "other_sku": []}
    for r in rows:
        j, i = r["wrong_inliers_at"], r["i"]
        if j >= 0:
            wrong[_relation(item, sku, i, j)].append(r["wrong_inliers_max"])
    return {
        "budget": budget,
        "copies_found_by_search": len(pos),
        "original_reached_within": {
            str(b): _rate(int(np.sum((ranks >= 0) & (ranks < b))), len(pos)) for b in range(1, 9)
        },
        "original_without_fit": _rate(int(np.sum(ranks < 0)), len(pos)),
        "original_inliers": _percentiles([r["own_inliers"] for r in pos if r["own_inliers"]]),
        "best_wrong_inliers": {k: _percentiles(v) for k, v in wrong.items()},
        "original_over_best_wrong_inliers": {
            "min": round(min(ratios, default=0.0), 2),
            "p1": round(float(np.percentile(ratios, 1)), 2) if ratios else 0.0,
            "p5": round(float(np.percentile(ratios, 5)), 2) if ratios else 0.0,
        },
        "fits_per_query_mean": round(float(np.mean([r["fits"] for r in rows])), 2),
        "dense_checks_per_query_mean": round(float(np.mean([r["dense_checks"] for r in rows])), 2),
    }


def _search_floor(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``copydetect.SEARCH_FLOOR`` is chosen from: how similar the copies are to
    their originals (of those the search finds without a floor), how many the floor
    loses, and how many candidates (keypoint fits) it spares per query."""
    pos = [r for r in rows if r["i"] < ORIGINALS and r["own_unfloored"]]
    sims = [r["own_similarity"] for r in pos]
    floor = copydetect.SEARCH_FLOOR
    return {
        "floor": floor,
        "copies_found_without_floor": len(pos),
        "copies_lost_to_floor": sum(s < floor for s in sims),
        "copy_similarity": {
            "min": round(min(sims), 3) if sims else None,
            **{f"p{q}": round(float(np.percentile(sims, q)), 3) for q in (1, 5, 50)},
        },
        "candidates_per_query_mean": round(float(np.mean([r["candidates"] for r in rows])), 2),
        "candidates_per_query_mean_without_floor": round(
            float(np.mean([r["candidates_unfloored"] for r in rows])), 2
        ),
    }


def _relation(item: dict[int, str], sku: dict[int, str], i: int, j: int) -> str:
    """How stored photo ``j`` relates to query ``i``: same item, same SKU, other SKU."""
    return "same_item" if item[j] == item[i] else "same_sku" if sku[j] == sku[i] else "other_sku"


def _percentiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    qs = {"p1": 1, "p5": 5, "p50": 50, "p95": 95, "p99": 99}
    out = {k: round(float(np.percentile(values, q)), 1) for k, q in qs.items()}
    return {**out, "max": float(max(values)), "n": float(len(values))}


def _overall(rows: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    pos = [r for r in rows if r["i"] < ORIGINALS + OTHERS]
    wrong = [r["wrong_max"] if r["i"] < ORIGINALS + OTHERS else r["best_score"] for r in rows]
    return {
        "queries": len(rows),
        "copy_top1": _rate(
            sum(r["best"] == r["i"] and r["best_score"] >= threshold for r in pos), len(pos)
        ),
        "copy_false_match_rate": _rate(sum(w >= threshold for w in wrong), len(rows)),
        "max_wrong_score": round(float(max(wrong)), 4),
        "own_score_p10": round(float(np.percentile([r["own_score"] for r in pos], 10)), 4),
    }


def _same_sku_pairs(records: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How the best wrong candidate relates to the query: same item, same SKU, other SKU."""
    sku = {r["i"]: r["sku"] for r in records}
    item = {r["i"]: r["item"] for r in records}
    counts = {"same_item": 0, "same_sku": 0, "other_sku": 0}
    worst = {"same_item": 0, "same_sku": 0, "other_sku": 0}
    for r in rows:
        if r["best"] < 0 or r["best"] == r["i"]:
            continue
        kind = _relation(item, sku, r["i"], r["best"])
        counts[kind] += 1
        worst[kind] = max(worst[kind], r["best_score"])
    return {"best_wrong_candidate": counts, "max_inliers": worst}


def markdown(res: dict[str, Any]) -> str:
    sig, cost = res["signal"], res["cost"]
    lines = [
        f"# Copy detection ({res['date']})",
        "",
        f"Held-out set: {res['held_out']['generator']}; {res['held_out']['originals']} "
        f"originals + {res['held_out']['other_photos']} other photos stored "
        f"({res['held_out']['skus']} SKUs), {res['held_out']['negatives']} never-stored "
        f"negatives; every one edited each way. pHash: nearest hash within "
        f"{sig['phash_max_hamming']} bits. Copy signal: top {sig['candidates']} of the "
        f"{sig['dim']}-d ORB word vector (and top {sig.get('content_box_candidates')} of the "
        f"query's content box's), verified (>= {sig['min_inliers']} inliers on one "
        f"similarity transform, then dense agreement); match at agreement >= "
        f"{sig['threshold_agreement']} (the policy's; the smallest with at most "
        f"{TARGET_FMR:.1%} false matches here: {sig.get('threshold_for_target_fmr')}).",
        "",
        "| edit | pHash top-1 | pHash false-match | copy top-1 | copy false-match |",
        "|---|---:|---:|---:|---:|",
    ]
    for edit, r in res["per_edit"].items():
        lines.append(
            f"| {edit} | {r['phash_top1']:.1%} | {r['phash_false_match_rate']:.2%} | "
            f"{r['copy_top1']:.1%} | {r['copy_false_match_rate']:.2%} |"
        )
    o = res["overall"]
    lines += [
        f"| **all** | | | **{o['copy_top1']:.1%}** | **{o['copy_false_match_rate']:.2%}** |",
        "",
        *_dense_budget_lines(res.get("dense_budget")),
        *_search_floor_lines(res.get("search_floor")),
        f"Cost per photo: describe {cost['describe_ms_320px']} ms (320 px), "
        f"{cost['describe_ms_1600x1200']} ms (1600x1200; pHash {cost['phash_ms_1600x1200']} ms); "
        f"verification {cost['verify_ms_per_candidate']} ms per candidate, "
        f"{cost.get('verify_ms_per_query_dense_budget')} ms per query photo with all its "
        f"candidates (dense check of the {res.get('dense_budget', {}).get('budget')} fits "
        f"with the most inliers; "
        f"{cost.get('verify_ms_per_query_every_candidate_dense')} ms checking every one "
        f"densely); index search "
        f"{cost['search_ms_at_100k']} ms at 100,000 stored photos, "
        f"{cost['search_ms_at_100k_with_parts']} ms with the query's "
        f"{cost['query_parts']} vectors of a screenshot: whole and content box (pHash "
        f"{cost['phash_search_ms_at_100k']} ms); stored {cost['stored_bytes_vector']} B vector "
        f"+ {cost['stored_bytes_local_mean']} B local features per photo.",
        "",
        f"Runtime {res['runtime_s']} s on {res['machine'].get('cpu_model')} "
        f"({res['machine'].get('cpu_count')} cores, load average "
        f"{res['machine'].get('load_average')}).",
        "",
    ]
    return "\n".join(lines)


def _search_floor_lines(floor: dict[str, Any] | None) -> list[str]:
    """The figures ``copydetect.SEARCH_FLOOR`` is chosen from, in one paragraph."""
    if not floor:
        return []
    sim = floor["copy_similarity"]
    return [
        f"Search floor: candidates less similar than {floor['floor']} are not verified "
        f"({floor['candidates_per_query_mean']} candidates per query instead of "
        f"{floor['candidates_per_query_mean_without_floor']}). Of the "
        f"{floor['copies_found_without_floor']} copies the search finds without it, the "
        f"floor loses {floor['copies_lost_to_floor']}; the least similar scored "
        f"{sim['min']} (1st percentile {sim['p1']}, median {sim['p50']}).",
        "",
    ]


def _dense_budget_lines(dense: dict[str, Any] | None) -> list[str]:
    """The figures ``copyverify.DENSE_BUDGET`` is chosen from, in one paragraph."""
    if not dense:
        return []
    own, wrong = dense["original_inliers"], dense["best_wrong_inliers"]["same_sku"]
    return [
        f"Dense budget: the {dense['budget']} fits with the most inliers are checked densely "
        f"({dense['dense_checks_per_query_mean']} checks per query, of "
        f"{dense['fits_per_query_mean']} fits). The original's fit comes first for "
        f"{dense['original_reached_within']['1']:.1%} of the {dense['copies_found_by_search']} "
        f"copies the search found, with at least "
        f"{dense['original_over_best_wrong_inliers']['min']} times the best wrong "
        f"candidate's inliers (original median {own.get('p50')}, 1st percentile "
        f"{own.get('p1')}; best wrong photo of the same SKU median {wrong.get('p50')}, "
        f"max {wrong.get('max')}).",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/returnlens-copybench"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--fit-vocabulary", action="store_true")
    ap.add_argument("--dense-budget", type=int, default=copyverify.DENSE_BUDGET)
    args = ap.parse_args(argv)
    if args.fit_vocabulary:
        fit_vocabulary(args.cache).save(copydetect.VOCABULARY)
        print(f"wrote {copydetect.VOCABULARY}")
        return 0
    res = run(args.cache, args.workers, args.out, args.dense_budget)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
