"""The copy check's descriptor matching (``vision/hamming.py``: faiss's exact binary
index) against OpenCV's brute-force matcher, which it replaced: the same ratio-tested
matches and the same fitted transforms on real ORB descriptors of generated photos; and
a worker forked after a search can still search (faiss's OpenMP is held to one thread).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence

import cv2
import numpy as np

from benchmarks.copy_detection import EDITS
from tests.test_copy_verify_budget import _same_sku_photos
from vision import copydetect, copyverify, hamming


def _reference_good(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    """The ratio-tested matches as ``copyverify.transform`` computed them before."""
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(a, b, k=2)
    return [
        (p[0].queryIdx, p[0].trainIdx)
        for p in pairs
        if len(p) == 2 and p[0].distance < copyverify.RATIO * p[1].distance
    ]


def _good(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    d, i = hamming.two_nearest(a, b)
    keep = np.flatnonzero((i[:, 1] >= 0) & (d[:, 0] < copyverify.RATIO * d[:, 1].astype(float)))
    return list(zip(keep.tolist(), i[keep, 0].tolist(), strict=True))


def _reference_transform(
    a: copydetect.LocalFeatures, b: copydetect.LocalFeatures
) -> tuple[np.ndarray | None, int]:
    good = _reference_good(a.descriptors, b.descriptors)
    if len(good) < 4:
        return None, 0
    src = a.points[[q for q, _ in good]]
    dst = b.points[[t for _, t in good]]
    model, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=copyverify.RANSAC_PX, maxIters=1000
    )
    if model is None or inliers is None:
        return None, 0
    scale = float(np.hypot(model[0, 0], model[1, 0]))
    if not 0.25 <= scale <= 4.0:
        return None, 0
    return model, int(inliers.sum())


def _described(photos: Sequence[np.ndarray]) -> list[copydetect.LocalFeatures]:
    return [copydetect.describe(p).local for p in photos]


def test_the_matches_are_the_brute_force_matchers() -> None:
    photos = list(_same_sku_photos())
    copy = EDITS["combined"](photos[0], np.random.default_rng(2))
    local = _described([*photos, copy])
    pairs = [(i, j) for i in range(len(local)) for j in range(len(local)) if i != j]
    kept = 0
    for i, j in pairs:
        want = _reference_good(local[i].descriptors, local[j].descriptors)
        assert _good(local[i].descriptors, local[j].descriptors) == want, (i, j)
        kept += len(want)
    assert kept > 1000  # photos of one SKU share artwork: the comparison is not vacuous


def test_the_fitted_transforms_are_the_ones_before() -> None:
    photos = list(_same_sku_photos())[:8]
    copy = EDITS["crop 70% area"](photos[3], np.random.default_rng(4))
    local = _described([*photos, copy])
    fitted = 0
    for j in range(len(photos)):
        for a, b in ((local[-1], local[j]), (local[j], local[-1])):
            # cv2's RANSAC draws from one global generator: the same seed for both calls
            cv2.setRNGSeed(1234)
            want_model, want_inliers = _reference_transform(a, b)
            cv2.setRNGSeed(1234)
            model, inliers = copyverify.transform(a, b)
            assert inliers == want_inliers
            assert (model is None) == (want_model is None)
            if model is not None and want_model is not None:
                assert np.array_equal(model, want_model)
                fitted += 1
    assert fitted >= 2  # the copy's fits (both ways) at least


def test_two_nearest_names_missing_neighbours() -> None:
    rng = np.random.default_rng(0)
    query = rng.integers(0, 256, (5, 32), dtype=np.uint8)
    d, i = hamming.two_nearest(query, query[:1])
    assert (i[:, 0] == 0).all() and (i[:, 1] == -1).all()
    assert d[0, 0] == 0


def _search_in_child(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (50, 32), dtype=np.uint8)
    queue.put(int(hamming.two_nearest(a, a)[0][:, 0].sum()))


def test_a_worker_forked_after_a_search_can_search() -> None:
    """With faiss's default OpenMP team, a child forked after the parent's search hangs in
    its own first search; ``vision.hamming`` holds OpenMP to one thread."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (50, 32), dtype=np.uint8)
    assert int(hamming.two_nearest(a, a)[0][:, 0].sum()) == 0  # the parent searches first
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_search_in_child, args=(queue,))
    child.start()
    child.join(60)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung, "the forked worker hung in its search"
    assert child.exitcode == 0 and queue.get(timeout=5) == 0
