"""``vision.hamming`` against OpenCV's brute-force Hamming matcher, the matcher it replaced:
the same distances and neighbours on ORB descriptors of a real photo and on random bits,
ties included."""

from __future__ import annotations

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


def _opencv_two(query: np.ndarray, stored: np.ndarray) -> tuple[np.ndarray, ...]:
    pairs = _MATCHER.knnMatch(query, stored, k=2)
    first = np.array([p[0].trainIdx for p in pairs])
    return first, np.array([p[0].distance for p in pairs]), np.array([p[1].distance for p in pairs])


@pytest.mark.parametrize("source", ["orb", "random"])
def test_two_nearest_matches_opencv(source: str) -> None:
    rng = np.random.default_rng(7)
    if source == "orb":
        query, stored = _orb(1), _orb(2)
    else:
        query, stored = _random(rng, 333), _random(rng, 401)
    assert len(query) > 50 and len(stored) > 50
    first, d1, d2 = hamming.two_nearest(hamming.lanes(query), hamming.lanes(stored))
    cv_first, cv_d1, cv_d2 = _opencv_two(query, stored)
    np.testing.assert_array_equal(d1, cv_d1)
    np.testing.assert_array_equal(d2, cv_d2)
    unique = d1 < d2  # on a tie either index is a nearest one
    np.testing.assert_array_equal(first[unique], cv_first[unique])
    full = hamming.distances(hamming.lanes(query), hamming.lanes(stored))
    np.testing.assert_array_equal(full[np.arange(len(query)), first], d1)


def test_extreme_distances_and_ties() -> None:
    zeros = np.zeros((1, 32), np.uint8)
    ones = np.full((1, 32), 255, np.uint8)
    stored = np.concatenate([ones, zeros, zeros, ones])
    first, d1, d2 = hamming.two_nearest(hamming.lanes(ones), hamming.lanes(stored))
    assert (first[0], d1[0], d2[0]) == (0, 0, 0)  # a tie at 0: the first of equals
    full = hamming.distances(hamming.lanes(zeros), hamming.lanes(stored))
    assert full.tolist() == [[256, 0, 0, 256]]  # all 256 bits apart does not wrap
    assert hamming.nearest(hamming.lanes(zeros), hamming.lanes(stored)).tolist() == [1]


def test_nearest_word_matches_opencv_match() -> None:
    vocab = copydetect.vocabulary()
    desc = _orb(3)
    centres = np.ascontiguousarray(vocab.centres).view(np.uint8).reshape(-1, 32)
    expected = np.zeros(len(desc), np.int64)
    for m in _MATCHER.match(desc, centres):
        expected[m.queryIdx] = m.trainIdx
    np.testing.assert_array_equal(copydetect.words_of(desc, vocab), expected)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8 descriptors"):
        hamming.lanes(np.zeros((4, 16), np.uint8))
    one = hamming.lanes(np.zeros((1, 32), np.uint8))
    with pytest.raises(ValueError, match="at least two"):
        hamming.two_nearest(one, one)
