"""Metric functions: pure numpy, no torch and no scikit-learn.

Evaluation of an exported ONNX model runs in a serving install (no torch), so every
metric here works on plain arrays. Edge cases return ``None`` (a label with no positives
has no AUROC) rather than raising, so one empty class never sinks a whole report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ECE_BINS = 15


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def uncalibrated_probs(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Recover the T=1 distribution from probabilities calibrated with temperature T.

    The exported graph emits p = softmax(z / T). Then log p = z / T - c for a per-row
    constant c, so softmax(T * log p) = softmax(z - T * c) = softmax(z): the raw model's
    distribution, exactly (softmax ignores a per-row shift). Probabilities are clipped
    away from 0 so the log stays finite.
    """
    logp = np.log(np.clip(probs.astype(np.float64), 1e-12, None))
    return softmax(logp * float(temperature))


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    p = probs[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, 1e-12, None)).mean())


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if len(y_true) == 0:
        return float("nan")
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


@dataclass(frozen=True)
class ClassScores:
    precision: tuple[float | None, ...]  # None: the class was never predicted
    recall: tuple[float | None, ...]  # None: the class has no true examples
    f1: tuple[float | None, ...]
    support: tuple[int, ...]
    macro_f1: float  # over classes present in y_true or y_pred


def class_scores(cm: np.ndarray) -> ClassScores:
    """Per-class precision/recall/F1 from a confusion matrix.

    Macro-F1 averages over classes that occur as truth or prediction; a class absent
    from both says nothing about the model and would only add a meaningless zero.
    """
    tp = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    prec: list[float | None] = []
    rec: list[float | None] = []
    f1: list[float | None] = []
    used: list[float] = []
    for k in range(cm.shape[0]):
        p = float(tp[k] / predicted[k]) if predicted[k] else None
        r = float(tp[k] / actual[k]) if actual[k] else None
        f = 2 * tp[k] / (predicted[k] + actual[k]) if predicted[k] + actual[k] else None
        prec.append(p)
        rec.append(r)
        f1.append(None if f is None else float(f))
        if f is not None:
            used.append(float(f))
    macro = float(np.mean(used)) if used else float("nan")
    return ClassScores(tuple(prec), tuple(rec), tuple(f1), tuple(int(a) for a in actual), macro)


def mean_absolute_grade_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean |predicted index - true index| over ordinal grades (0 = best)."""
    if len(y_true) == 0:
        return float("nan")
    return float(np.mean(np.abs(np.asarray(y_true, np.int64) - np.asarray(y_pred, np.int64))))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    boundaries = np.flatnonzero(np.diff(sorted_x)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(x)]])
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    return ranks


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count half).

    Returns None when the labels hold only one class: the AUROC is undefined then.
    """
    y = np.asarray(labels).astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return None
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    u = ranks[y].sum() - pos * (pos + 1) / 2.0
    return float(u / (pos * neg))


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0,0)."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    pos, neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fps / neg], np.r_[0.0, tps / pos]


@dataclass(frozen=True)
class ReliabilityBins:
    """Top-label reliability diagram data: equal-width confidence bins on [0, 1]."""

    edges: np.ndarray  # [B+1]
    confidence: np.ndarray  # [B] mean confidence per bin (nan when empty)
    accuracy: np.ndarray  # [B] accuracy per bin (nan when empty)
    count: np.ndarray  # [B]

    @property
    def ece(self) -> float:
        total = self.count.sum()
        if total == 0:
            return float("nan")
        full = self.count > 0
        gaps = np.abs(self.accuracy[full] - self.confidence[full])
        return float((gaps * self.count[full]).sum() / total)


def reliability_bins(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS
) -> ReliabilityBins:
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin b holds (edges[b], edges[b+1]]; confidence exactly 0 cannot occur for a max.
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        mean_acc = np.bincount(idx, weights=correct.astype(np.float64), minlength=n_bins) / count
    return ReliabilityBins(edges, mean_conf, mean_acc, count)


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS
) -> float:
    """Top-label ECE: count-weighted mean |accuracy - confidence| over equal-width bins."""
    return reliability_bins(probs, labels, n_bins).ece


@dataclass(frozen=True)
class CoverageCurve:
    """Auto-approval operating points: decide only when confidence >= threshold."""

    thresholds: np.ndarray  # ascending
    coverage: np.ndarray  # share of items decided
    accuracy: np.ndarray  # accuracy among decided items (nan when none decided)
    total: int = 0  # items the curve was computed on

    def at(self, threshold: float) -> tuple[float, float]:
        """(coverage, accuracy) when deciding at confidence >= ``threshold``."""
        i = int(np.searchsorted(self.thresholds, threshold, side="left"))
        if i >= len(self.thresholds):
            return 0.0, float("nan")
        return float(self.coverage[i]), float(self.accuracy[i])


def coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> CoverageCurve:
    """Coverage and decided-set accuracy at every distinct confidence value.

    At threshold t the decided set is {i: confidence_i >= t}; taking every observed
    confidence as a candidate threshold gives the exact curve.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct).astype(np.float64)
    n = len(conf)
    if n == 0:
        empty = np.zeros(0)
        return CoverageCurve(empty, empty, empty, 0)
    order = np.argsort(-conf, kind="mergesort")
    c, k = conf[order], ok[order]
    decided = np.arange(1, n + 1)
    right = np.cumsum(k)
    # Keep the last position of each run of equal confidences (ties decide together).
    last = np.r_[np.flatnonzero(np.diff(c)), n - 1]
    thr, cov, acc = c[last], decided[last] / n, right[last] / decided[last]
    return CoverageCurve(thr[::-1].copy(), cov[::-1].copy(), acc[::-1].copy(), n)


def threshold_for_accuracy(
    curve: CoverageCurve, target: float, *, min_decided: int = 1
) -> float | None:
    """The smallest confidence threshold whose decided-set accuracy reaches ``target``
    while deciding at least ``min_decided`` items.

    Smallest threshold = largest coverage. ``min_decided`` keeps a threshold from resting
    on a handful of lucky items. None when no threshold qualifies.
    """
    ok = (curve.accuracy >= target) & (np.rint(curve.coverage * curve.total) >= min_decided)
    hits = np.flatnonzero(ok)
    return float(curve.thresholds[hits[0]]) if len(hits) else None


@dataclass(frozen=True)
class PairSimilarities:
    same: np.ndarray  # cosine similarities of same-SKU pairs
    different: np.ndarray  # cosine similarities of different-SKU pairs

    @property
    def auroc(self) -> float | None:
        scores = np.r_[self.same, self.different]
        labels = np.r_[np.ones(len(self.same)), np.zeros(len(self.different))]
        return auroc(scores, labels)


def sku_pair_similarities(
    embeddings: np.ndarray, skus: list[str], *, max_pairs: int = 20000, seed: int = 0
) -> PairSimilarities:
    """Cosine similarities over same-SKU and different-SKU pairs of distinct photos.

    All pairs cost O(N^2); beyond ``max_pairs`` per kind a seeded random subsample
    bounds the cost while keeping the estimate unbiased.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = emb / np.where(norms > 0, norms, 1.0)
    sku = np.asarray(skus, dtype=object)
    n = len(sku)
    rng = np.random.default_rng(seed)
    if n * (n - 1) // 2 <= 4 * max_pairs:
        i, j = np.triu_indices(n, k=1)
    else:
        i = rng.integers(0, n, size=8 * max_pairs)
        j = rng.integers(0, n, size=8 * max_pairs)
        keep = i != j
        i, j = i[keep], j[keep]
    same_mask = sku[i] == sku[j]
    sims = np.einsum("ij,ij->i", emb[i], emb[j])

    def pick(values: np.ndarray) -> np.ndarray:
        if len(values) > max_pairs:
            values = rng.choice(values, size=max_pairs, replace=False)
        return values.astype(np.float64)

    return PairSimilarities(pick(sims[same_mask]), pick(sims[~same_mask]))


def similarity_threshold(same: np.ndarray, false_flag_rate: float = 0.01) -> float | None:
    """Wrong-item threshold: flag when similarity < t; t is the ``false_flag_rate``
    quantile of same-SKU similarities, so that share of genuine items is flagged."""
    if len(same) == 0:
        return None
    return float(np.quantile(same, false_flag_rate))
