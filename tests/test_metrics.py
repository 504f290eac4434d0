"""Metric and calibration functions on hand-made arrays with known answers.

scikit-learn (a training extra) cross-checks the rank-based AUROC, ROC curve and
per-class scores; the implementations under test never import it.
"""

from __future__ import annotations

import numpy as np
import pytest

from training.calibrate import fit_temperature, suggest_thresholds
from training.metrics import (
    auroc,
    class_scores,
    confusion_matrix,
    coverage_curve,
    expected_calibration_error,
    mean_absolute_grade_error,
    reliability_bins,
    roc_curve,
    similarity_threshold,
    sku_pair_similarities,
    softmax,
    threshold_for_accuracy,
    uncalibrated_probs,
)
from vision.errors import DataError


def test_ece_on_known_bins() -> None:
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    # conf 0.9 bin: accuracy 0.5 (gap 0.4); conf 0.6 bin: accuracy 1.0 (gap 0.4).
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    bins = reliability_bins(probs, labels)
    assert bins.count.sum() == 4 and (bins.count > 0).sum() == 2
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(perfect, np.array([0, 1])) == pytest.approx(0.0)


def test_ece_bin_edges_are_right_closed() -> None:
    # 15 bins: 1/15 * 7 = 0.4667 is an edge; confidence exactly at it joins the lower bin.
    edge = 7 / 15
    probs = np.array([[edge, 1 - edge - 0.2, 0.2]])
    bins = reliability_bins(probs, np.array([0]))
    assert int(np.flatnonzero(bins.count)[0]) == 6


def test_auroc_known_values_and_ties() -> None:
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert auroc(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(0.5)
    assert auroc(np.array([0.2, 0.9]), np.array([0, 1])) == pytest.approx(1.0)
    assert auroc(np.array([0.9, 0.2]), np.array([0, 1])) == pytest.approx(0.0)


def test_auroc_undefined_without_both_classes() -> None:
    assert auroc(np.array([0.1, 0.7]), np.array([0, 0])) is None
    assert auroc(np.array([0.1, 0.7]), np.array([1, 1])) is None


def test_auroc_and_roc_match_sklearn() -> None:
    from sklearn.metrics import roc_auc_score
    from sklearn.metrics import roc_curve as sk_roc

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounding makes many ties
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    fpr, tpr = roc_curve(scores, labels)
    sk_fpr, sk_tpr, _ = sk_roc(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


def test_confusion_and_class_scores_match_sklearn() -> None:
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    y = np.array([0, 0, 1, 1, 2, 2, 2, 1])
    p = np.array([0, 1, 1, 1, 0, 2, 2, 2])
    cm = confusion_matrix(y, p, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 1], [1, 0, 2]]
    cs = class_scores(cm)
    prec, rec, f1, support = precision_recall_fscore_support(y, p)
    np.testing.assert_allclose(np.array(cs.precision, dtype=float), prec)
    np.testing.assert_allclose(np.array(cs.recall, dtype=float), rec)
    np.testing.assert_allclose(np.array(cs.f1, dtype=float), f1)
    assert list(cs.support) == support.tolist()
    assert cs.macro_f1 == pytest.approx(f1_score(y, p, average="macro"))


def test_class_scores_absent_class_is_none_not_zero() -> None:
    cs = class_scores(confusion_matrix(np.array([0, 0, 1]), np.array([0, 0, 1]), 3))
    assert cs.precision[2] is None and cs.recall[2] is None and cs.f1[2] is None
    assert cs.macro_f1 == pytest.approx(1.0)


def test_mean_absolute_grade_error() -> None:
    assert mean_absolute_grade_error(
        np.array([0, 1, 2, 4]), np.array([0, 2, 2, 1])
    ) == pytest.approx(1.0)


def test_coverage_curve_and_threshold() -> None:
    curve = coverage_curve(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 1, 0, 1]))
    np.testing.assert_allclose(curve.thresholds, [0.6, 0.7, 0.8, 0.9])
    np.testing.assert_allclose(curve.coverage, [1.0, 0.75, 0.5, 0.25])
    np.testing.assert_allclose(curve.accuracy, [0.75, 2 / 3, 1.0, 1.0])
    assert threshold_for_accuracy(curve, 0.98) == pytest.approx(0.8)
    assert threshold_for_accuracy(curve, 0.7) == pytest.approx(0.6)
    assert curve.at(0.75) == pytest.approx((0.5, 1.0))
    assert curve.at(0.95)[0] == 0.0


def test_coverage_curve_ties_decide_together() -> None:
    curve = coverage_curve(np.array([0.9, 0.9, 0.5]), np.array([1, 0, 1]))
    np.testing.assert_allclose(curve.thresholds, [0.5, 0.9])
    np.testing.assert_allclose(curve.coverage, [1.0, 2 / 3])
    np.testing.assert_allclose(curve.accuracy, [2 / 3, 0.5])
    assert threshold_for_accuracy(curve, 0.98) is None


def test_uncalibrated_probs_recovers_t1_distribution() -> None:
    logits = np.random.default_rng(0).normal(0, 3, (50, 5))
    calibrated = softmax(logits / 2.5)
    np.testing.assert_allclose(uncalibrated_probs(calibrated, 2.5), softmax(logits), atol=1e-9)


def test_fit_temperature_recovers_known_temperature() -> None:
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2.0, (20000, 5))
    p = softmax(true_logits)
    labels = (p.cumsum(axis=1) > rng.random((len(p), 1))).argmax(axis=1)
    t = fit_temperature(true_logits * 2.5, labels)  # overconfident by 2.5x
    assert t == pytest.approx(2.5, rel=0.1)
    assert fit_temperature(true_logits, labels) == pytest.approx(1.0, rel=0.1)


def test_fit_temperature_is_bounded_and_refuses_bad_input() -> None:
    logits = np.array([[10.0, -10.0], [10.0, -10.0]])
    assert fit_temperature(logits, np.array([0, 0])) == pytest.approx(0.05, rel=1e-3)
    assert fit_temperature(logits, np.array([1, 1])) == pytest.approx(20.0, rel=1e-3)
    with pytest.raises(DataError, match="NaN or infinity"):
        fit_temperature(np.array([[np.nan, 0.0]]), np.array([0]))
    with pytest.raises(DataError):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int))


def test_sku_pairs_and_similarity_threshold() -> None:
    emb = np.array([[1, 0.0], [0.99, 0.1], [0.98, -0.1], [0, 1.0], [0.1, 0.99]])
    pairs = sku_pair_similarities(emb, ["a", "a", "a", "b", "b"])
    assert len(pairs.same) == 4 and len(pairs.different) == 6
    assert pairs.auroc == pytest.approx(1.0)
    assert similarity_threshold(np.array([0.2, 0.9, 0.95, 0.99]), 0.0) == pytest.approx(0.2)
    assert similarity_threshold(np.array([]), 0.01) is None
    big = np.random.default_rng(0).normal(size=(400, 4))
    sub = sku_pair_similarities(big, [str(i % 7) for i in range(400)], max_pairs=500)
    assert len(sub.same) <= 500 and len(sub.different) == 500


def test_suggest_thresholds() -> None:
    probs = np.array([[0.99, 0.01], [0.95, 0.05], [0.8, 0.2], [0.6, 0.4]])
    labels = np.array([0, 0, 0, 1])  # the 0.6 one is wrong
    emb = np.eye(4)
    thr = suggest_thresholds(
        probs, labels, emb, ["a", "a", "b", "b"], approve_precision=0.98, min_decided=1
    )
    assert thr.auto_approve_confidence == pytest.approx(0.8)
    assert thr.auto_approve_coverage == pytest.approx(0.75)
    assert thr.as_card_dict()["damage_present"] == 0.5
    none = suggest_thresholds(probs, np.array([1, 1, 1, 1]), emb, ["a", "a", "b", "b"])
    assert none.auto_approve_confidence == 1.0 and none.auto_approve_coverage == 0.0


def test_threshold_needs_enough_decided_items() -> None:
    """The 5 most confident items are right and the 6th is wrong: a 100%-accurate
    threshold exists over 5 items but not over 6 or more."""
    conf = np.linspace(0.99, 0.5, 100)
    correct = np.ones(100, dtype=bool)
    correct[5] = False
    correct[20::10] = False
    curve = coverage_curve(conf, correct)
    assert curve.total == 100
    assert threshold_for_accuracy(curve, 1.0) == pytest.approx(conf[4])
    assert threshold_for_accuracy(curve, 1.0, min_decided=5) == pytest.approx(conf[4])
    assert threshold_for_accuracy(curve, 1.0, min_decided=6) is None
    # Errors at 5, 20, 30, ..., 90 (9 in all): all 100 decided reach 91%; 95% holds for
    # the top 20 (one error) and for no larger set.
    assert threshold_for_accuracy(curve, 0.9, min_decided=50) == pytest.approx(conf[99])
    assert threshold_for_accuracy(curve, 0.95, min_decided=20) == pytest.approx(conf[19])
    assert threshold_for_accuracy(curve, 0.95, min_decided=21) is None
