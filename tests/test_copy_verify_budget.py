"""The copy check's two-phase verification (``copyverify.verify_candidates``): every
candidate's keypoint fit, then the dense check of only the ``DENSE_BUDGET`` fits with the
most inliers.

The case it is for: many shoppers return one product, and its printed artwork gives
another photo of it ``MIN_INLIERS`` and more, so a dozen candidates of one SKU all pass
the keypoint fit. A copy must still be found wherever it sits among them, and the dense
check must run no more than the budget allows.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from benchmarks.copy_detection import EDITS
from serving.policy import load_policy
from vision import copydetect, copyverify

THRESHOLD = load_policy().spec.reused_photo.min_agreement
SKU = "mug-01"  # the most photographed SKU of the set below; its pattern gives many inliers


@functools.cache
def _same_sku_photos() -> tuple[np.ndarray, ...]:
    """Thirteen generated photos of one SKU (six items, two photos each, and one more)."""
    from vision.synth.dataset import SynthConfig, plan_item, render_record

    cfg = SynthConfig(count=400, seed=99, image_size=320, variety="wide", photos_per_item=2,
                      dock_share=0.0)  # fmt: skip
    indices = [i for i in range(cfg.count) if plan_item(cfg, i // 2).sku.sku == SKU][:13]
    photos = []
    for i in indices:
        _, data, _ = render_record(cfg, i)
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert bgr is not None
        photos.append(np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return tuple(photos)


def _stored(rgb: np.ndarray) -> copydetect.LocalFeatures:
    """What the database holds for a photo: its features through their bytes."""
    return copydetect.LocalFeatures.from_bytes(copydetect.describe(rgb).local.to_bytes())


@pytest.fixture
def dense_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts ``copyverify.agreement`` calls (one element per call)."""
    calls: list[int] = []
    real = copyverify.agreement

    def counted(*args: object, **kwargs: object) -> float:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(copyverify, "agreement", counted)
    yield calls


@pytest.mark.parametrize("edit", ["combined", "crop 70% area", "screenshot"])
def test_a_copy_behind_a_dozen_same_sku_photos_is_found(edit: str, dense_calls: list[int]) -> None:
    """The original is the last candidate (the search ranked eleven other photos of the
    SKU nearer): it is still found, with no more dense checks than the budget."""
    photos = _same_sku_photos()
    original, others = photos[1], [p for k, p in enumerate(photos) if k != 1][:11]
    stored = [_stored(p) for p in [*others, original]]
    query = copydetect.describe(EDITS[edit](original, np.random.default_rng(3)))
    checked = copyverify.verify_candidates(query, stored, conclusive=2.0)
    assert len(set(checked.ranked)) > copyverify.DENSE_BUDGET  # the budget does bite here
    assert checked.dense_checks == len(dense_calls) <= copyverify.DENSE_BUDGET
    found = copyverify.best_verified(query, stored)
    assert found is not None
    assert found[0] == len(stored) - 1 and found[1] >= THRESHOLD, (edit, found)
    assert max(checked.scores[:-1]) < THRESHOLD


def test_another_photo_of_the_sku_gets_at_most_the_budget_of_dense_checks(
    dense_calls: list[int],
) -> None:
    """No copy among the candidates: every candidate is fitted, only the budget's worth
    of them is checked densely, and nothing matches."""
    photos = _same_sku_photos()
    query = copydetect.describe(photos[3])
    stored = [_stored(p) for k, p in enumerate(photos) if k != 3]
    checked = copyverify.verify_candidates(query, stored)
    assert len(checked.ranked) > copyverify.DENSE_BUDGET
    assert len(dense_calls) == checked.dense_checks == copyverify.DENSE_BUDGET
    assert max(checked.scores) < THRESHOLD
    dense_calls.clear()
    assert copyverify.verify_candidates(query, stored, dense_budget=0).best() is None
    assert not dense_calls


def test_the_dense_order_is_by_inliers_and_stops_at_a_conclusive_score(
    dense_calls: list[int],
) -> None:
    photos = _same_sku_photos()
    stored = [_stored(p) for p in photos[2:]]
    stored.insert(5, _stored(photos[1]))
    query = copydetect.describe(EDITS["re-encode (q90)"](photos[1], np.random.default_rng(1)))
    inliers = [f.inliers for f in copyverify.fits(query, stored)]
    assert inliers == sorted(inliers, reverse=True) and len(inliers) > 1
    checked = copyverify.verify_candidates(query, stored)
    assert checked.ranked[0] == 5 and checked.scores[5] >= copyverify.CONCLUSIVE
    assert checked.dense_checks == len(dense_calls) == 1  # the copy ends the search


def test_unlimited_it_scores_like_verify_query() -> None:
    """With no budget and no early stop, each candidate's score is ``verify_query``'s
    (the benchmark's figures before the budget)."""
    photos = _same_sku_photos()
    stored = [_stored(p) for p in photos[:8]]
    for query in (
        copydetect.describe(photos[9]),
        copydetect.describe(EDITS["border"](photos[4], np.random.default_rng(2))),
    ):
        checked = copyverify.verify_candidates(query, stored, dense_budget=99, conclusive=2.0)
        assert checked.scores == tuple(copyverify.verify_query(query, s) for s in stored)


def test_no_candidates() -> None:
    query = copydetect.describe(_same_sku_photos()[0])
    assert copyverify.best_verified(query, []) is None
    assert copyverify.verify_candidates(query, []).scores == ()


def _ransac_transform(
    a: copydetect.LocalFeatures, b: copydetect.LocalFeatures
) -> tuple[np.ndarray | None, int]:
    """``copyverify.transform`` as it was, RANSAC run on any 4 ratio-tested matches: the
    reference for the shortcut below."""
    first, d1, d2 = copyverify.hamming.two_nearest(a.descriptors, b.descriptors)
    good = np.flatnonzero(d1 < copyverify.RATIO * d2.astype(np.float64))
    if len(good) < 4:
        return None, 0
    model, inliers = cv2.estimateAffinePartial2D(
        a.points[good], b.points[first[good]], method=cv2.RANSAC,
        ransacReprojThreshold=copyverify.RANSAC_PX, maxIters=1000,
    )  # fmt: skip
    if model is None or inliers is None:
        return None, 0
    scale = float(np.hypot(model[0, 0], model[1, 0]))
    return (model, int(inliers.sum())) if 0.25 <= scale <= 4.0 else (None, 0)


def test_too_few_matches_for_min_inliers_skip_ransac_and_keep_every_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pair with fewer ratio-tested matches than ``MIN_INLIERS`` cannot fit with that
    many inliers, so ``transform`` answers (None, 0) without RANSAC; every fit that
    counts (``MIN_INLIERS`` or more) is the same transform as RANSAC's on all of them."""
    photos = _same_sku_photos()
    queries = [copydetect.describe(p).local for p in photos[:5]]
    cropped = EDITS["crop 70% area"](photos[0], np.random.default_rng(1))
    queries.append(copydetect.describe(cropped).local)
    stored = [_stored(p) for p in photos]
    calls: list[int] = []
    ransac = cv2.estimateAffinePartial2D

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return ransac(*args, **kwargs)

    monkeypatch.setattr(copyverify.cv2, "estimateAffinePartial2D", counted)
    skipped = kept = 0
    for q in queries:
        for s in stored:
            before = len(calls)
            model, inliers = copyverify.transform(q, s)
            ran = len(calls) > before
            ref_model, ref_inliers = _ransac_transform(q, s)
            if ref_model is not None and ref_inliers >= copyverify.MIN_INLIERS:
                kept += 1
                assert ran and inliers == ref_inliers
                np.testing.assert_array_equal(model, ref_model)
            else:
                assert model is None or inliers < copyverify.MIN_INLIERS
                skipped += not ran
    assert kept >= 5  # the copies and the artwork fits are found as before
    assert skipped >= 5  # and some pairs never reach RANSAC
