"""Temperature scaling and suggested operating thresholds (numpy; scipy for the fit).

Temperature scaling (Guo et al., 2017) divides the grade logits by one scalar T fitted
on the validation split; it changes confidences, never the argmax, so accuracy is
untouched. The thresholds written into the model card come from the same validation
outputs, so a deployment starts from operating points measured, not guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from training.metrics import (
    coverage_curve,
    nll,
    similarity_threshold,
    sku_pair_similarities,
    softmax,
    threshold_for_accuracy,
)
from vision.errors import DataError

T_MIN, T_MAX = 0.05, 20.0
MIN_DECIDED = 50


def temperature_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    return nll(softmax(logits / temperature), labels)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, tol: float = 1e-4) -> float:
    """T in [0.05, 20] minimising the validation NLL of softmax(logits / T).

    The NLL is convex in 1/T (log-sum-exp of a linear function minus a linear term), so
    it is unimodal in log T and scipy's bounded Brent search on log T finds the optimum
    without gradients. A bound is returned when the optimum lies beyond it (Brent never
    evaluates the ends exactly, so they are compared explicitly). scipy is imported here,
    not at the top: ``returnlens evaluate`` imports this module in a serving install.
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if z.ndim != 2 or len(z) != len(y) or len(y) == 0:
        raise DataError(
            "temperature fitting needs [N,G] logits and N labels with N > 0", code="invalid_data"
        )
    if not np.isfinite(z).all():
        raise DataError(
            "the validation logits contain NaN or infinity; the checkpoint is broken",
            code="non_finite",
        )

    def f(log_t: float) -> float:
        return temperature_nll(z, y, math.exp(log_t))

    lo, hi = math.log(T_MIN), math.log(T_MAX)
    found = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": tol})
    best = float(found.x)
    candidates = [(f(best), best), (f(lo), lo), (f(hi), hi)]
    return float(math.exp(min(candidates)[1]))


@dataclass(frozen=True)
class SuggestedThresholds:
    auto_approve_confidence: float
    auto_approve_coverage: float  # share of validation items decided at that threshold
    wrong_item_similarity: float | None
    damage_present: float = 0.5

    def as_card_dict(self) -> dict[str, float]:
        out = {
            "auto_approve_confidence": self.auto_approve_confidence,
            "damage_present": self.damage_present,
        }
        if self.wrong_item_similarity is not None:
            out["wrong_item_similarity"] = self.wrong_item_similarity
        return out


def suggest_thresholds(
    grade_probs: np.ndarray,
    labels: np.ndarray,
    embeddings: np.ndarray,
    skus: list[str],
    *,
    approve_precision: float = 0.98,
    false_wrong_item_rate: float = 0.01,
    min_decided: int = MIN_DECIDED,
) -> SuggestedThresholds:
    """Operating points from validation outputs (calibrated grade probabilities).

    ``auto_approve_confidence`` is the smallest confidence whose decided-set accuracy
    reaches ``approve_precision`` over at least ``min_decided`` validation items; when
    none does, 1.0 (approve nothing automatically). 50 items is about the fewest on
    which 98% and 100% can be told apart (one error in 50), so a threshold never rests
    on the few most confident photos.
    ``wrong_item_similarity`` flags an item when its similarity to the SKU reference is
    below the ``false_wrong_item_rate`` quantile of same-SKU similarities.
    """
    conf = grade_probs.max(axis=1)
    correct = grade_probs.argmax(axis=1) == labels
    curve = coverage_curve(conf, correct)
    thr = threshold_for_accuracy(
        curve, approve_precision, min_decided=min(min_decided, len(labels))
    )
    approve = 1.0 if thr is None else thr
    coverage = curve.at(approve)[0] if thr is not None else 0.0
    pairs = sku_pair_similarities(embeddings, skus)
    sim = similarity_threshold(pairs.same, false_wrong_item_rate)
    return SuggestedThresholds(
        auto_approve_confidence=round(float(approve), 6),
        auto_approve_coverage=round(float(coverage), 6),
        wrong_item_similarity=None if sim is None else round(sim, 6),
    )
