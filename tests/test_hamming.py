"""``vision.hamming`` (faiss) against OpenCV's brute-force Hamming matcher, the matcher the
copy check first used, and against every distance counted bit by bit: the same distances
and neighbours on ORB descriptors of real renders and on random bits, ties included, and
no OpenMP team started by a search from a thread of its own."""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np
import pytest

from tests.service_data import scene
from vision import copydetect, hamming

_MATCHER = cv2.BFMatcher(cv2.NORM_HAMMING)


def _orb(seed: int) -> np.ndarray:
    return copydetect.local_features(scene(seed=seed)).descriptors


def _random(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 32), dtype=np.uint8)


def _bitwise(query: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """(n, m) Hamming distances, every bit unpacked and compared: the plain definition."""
    q, s = np.unpackbits(query, axis=1), np.unpackbits(stored, axis=1)
    return (q[:, None, :] != s[None, :, :]).sum(axis=2)


def _opencv_two(query: np.ndarray, stored: np.ndarray) -> tuple[np.ndarray, ...]:
    pairs = _MATCHER.knnMatch(query, stored, k=2)
    first = np.array([p[0].trainIdx for p in pairs])
    return first, np.array([p[0].distance for p in pairs]), np.array([p[1].distance for p in pairs])


@pytest.mark.parametrize("source", ["orb", "random", "near"])
def test_two_nearest_matches_opencv_and_the_bits(source: str) -> None:
    rng = np.random.default_rng(7)
    if source == "orb":
        query, stored = _orb(1), _orb(2)
    elif source == "random":
        query, stored = _random(rng, 333), _random(rng, 401)
    else:  # stored = query with a few bits flipped: small distances and many ties
        query = _random(rng, 200)
        flips = np.packbits(rng.random((200, 256)) < 0.02, axis=1)
        stored = np.concatenate([query ^ flips, query[:50]])
    assert len(query) > 50 and len(stored) > 50
    first, d1, d2 = hamming.two_nearest(query, stored)
    cv_first, cv_d1, cv_d2 = _opencv_two(query, stored)
    np.testing.assert_array_equal(d1, cv_d1)
    np.testing.assert_array_equal(d2, cv_d2)
    unique = d1 < d2  # on a tie either index is a nearest one
    assert unique.any()
    np.testing.assert_array_equal(first[unique], cv_first[unique])
    full = _bitwise(query, stored)
    rows = np.arange(len(query))
    np.testing.assert_array_equal(full[rows, first], d1)
    np.testing.assert_array_equal(full.min(axis=1), d1)
    np.testing.assert_array_equal(np.sort(full, axis=1)[:, 1], d2)


def test_extreme_distances_and_ties() -> None:
    zeros = np.zeros((1, 32), np.uint8)
    ones = np.full((1, 32), 255, np.uint8)
    stored = np.concatenate([ones, zeros, zeros, ones])
    first, d1, d2 = hamming.two_nearest(ones, stored)
    assert (first[0], d1[0], d2[0]) == (0, 0, 0)  # a tie at 0: the first of equals
    first, d1, d2 = hamming.two_nearest(zeros, stored[[0, 3]])
    assert (d1[0], d2[0]) == (256, 256)  # all 256 bits apart does not wrap
    assert hamming.nearest(zeros, stored).tolist() == [1]


def test_nearest_word_matches_opencv_match_ties_included() -> None:
    vocab = copydetect.vocabulary()
    desc = _orb(3)
    expected = np.zeros(len(desc), np.int64)
    for m in _MATCHER.match(desc, vocab.centres):
        expected[m.queryIdx] = m.trainIdx
    full = _bitwise(desc, vocab.centres)
    ties = (full == full.min(axis=1, keepdims=True)).sum(axis=1) > 1
    assert ties.any()  # ORB descriptors of a render tie between words: the first wins
    np.testing.assert_array_equal(copydetect.words_of(desc, vocab), expected)
    np.testing.assert_array_equal(expected, full.argmin(axis=1))


def test_empty_queries_and_bad_shapes() -> None:
    none = np.zeros((0, 32), np.uint8)
    two = np.zeros((2, 32), np.uint8)
    assert hamming.nearest(none, two).shape == (0,)
    assert [a.shape for a in hamming.two_nearest(none, two)] == [(0,), (0,), (0,)]
    with pytest.raises(ValueError, match="uint8 descriptors"):
        hamming.nearest(np.zeros((4, 16), np.uint8), two)
    with pytest.raises(ValueError, match="uint8 descriptors"):  # checked when empty too
        hamming.two_nearest(np.zeros((0, 16), np.uint8), two)
    with pytest.raises(ValueError, match="at least two"):
        hamming.two_nearest(two, two[:1])


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_a_search_from_a_new_thread_runs_on_that_thread_alone() -> None:
    """OpenMP's thread count is per thread: a request thread that never set it would get
    one OpenMP worker per core for every search (see vision/hamming.py)."""
    rng = np.random.default_rng(3)
    query, stored = _random(rng, 400), _random(rng, 400)
    counts: list[int] = []

    def search() -> None:
        before = _threads()
        for _ in range(5):
            hamming.two_nearest(query, stored)
        counts.append(_threads() - before)

    for _ in range(3):  # fresh threads each time: none has set anything before
        t = threading.Thread(target=search)
        t.start()
        t.join()
    assert counts == [0, 0, 0]
