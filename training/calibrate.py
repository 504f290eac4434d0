"""Temperature scaling and suggested operating thresholds (numpy; scipy for the fit).

Temperature scaling (Guo et al., 2017) divides the grade logits by one scalar T fitted
on the validation split; it changes confidences, never the argmax, so accuracy is
untouched. The thresholds written into the model card come from the same validation
outputs, so a deployment starts from operating points measured, not guessed.

Scaling is not trusted blindly (``choose_temperature``): the NLL-optimal T can make the
top-label calibration error (ECE) worse, and on a few dozen photos the fit can run to
its bound (a retraining run on 35-76 validation photos got T = 0.05 and ECE 0.122 ->
0.188, unnoticed). So export measures ECE without and with scaling, keeps the better
one, and says which in one sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from training.metrics import (
    coverage_curve,
    expected_calibration_error,
    nll,
    similarity_threshold,
    sku_pair_similarities,
    softmax,
    threshold_for_accuracy,
)
from vision.errors import DataError

T_MIN, T_MAX = 0.05, 20.0
MIN_DECIDED = 50
# Fewest graded validation photos temperature scaling is attempted on. Below it one
# photo moves a 15-bin ECE by more than 0.02 and the one-parameter fit follows a handful
# of confident photos, so export keeps T = 1 and says so (it does not refuse the export:
# the graph, the parity check and the test metrics are as valid as ever; only the
# confidences stay the network's own, which the card states).
MIN_CALIBRATION_PHOTOS = 50
# A fitted T outside this range is a degenerate fit, not a calibration: T -> 0.05 is what
# the NLL does when every validation photo is graded right (it keeps falling as the
# logits are sharpened), T -> 20 when it flattens every photo to near-uniform. Trained
# models land well inside it (the shipped model: 0.44).
T_PLAUSIBLE = (0.1, 10.0)
CV_FOLDS = 5


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


Kept = Literal["scaled", "unscaled"]


@dataclass(frozen=True)
class CalibrationChoice:
    """Which temperature export keeps, the ECE figures behind it, and the sentence.

    ``ece_after`` is cross-validated: each photo is scaled by a T fitted on the other
    folds, so the comparison with ``ece_before`` does not favour scaling merely because
    T was fitted on the very photos it is judged on. ``ece_after_in_sample`` is the ECE
    of the final T on all of them (for reference). Both are None when no fit was tried.
    """

    temperature: float  # the one the graph and the card carry
    fitted: float | None  # the NLL-optimal T; None when the split was too small
    ece_before: float
    ece_after: float | None
    ece_after_in_sample: float | None
    kept: Kept
    photos: int
    sentence: str

    def card_dict(self) -> dict[str, Any]:
        def num(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else round(float(x), 6)

        return {
            "ece_before": num(self.ece_before),
            "ece_after": num(self.ece_after),
            "ece_after_in_sample": num(self.ece_after_in_sample),
            "temperature": self.temperature,
            "fitted_temperature": num(self.fitted),
            "kept": self.kept,
            "val_photos": self.photos,
            "min_val_photos": MIN_CALIBRATION_PHOTOS,
            "note": self.sentence,
        }


def cross_validated_probs(
    logits: np.ndarray, labels: np.ndarray, *, folds: int = CV_FOLDS, seed: int = 0
) -> np.ndarray:
    """Out-of-fold scaled probabilities: each photo divided by a T fitted without it."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    fold = np.random.default_rng(seed).permutation(len(y)) % folds
    out = np.empty_like(z)
    for k in range(folds):
        held = fold == k
        if held.any():
            out[held] = softmax(z[held] / fit_temperature(z[~held], y[~held]))
    return out


def choose_temperature(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    min_photos: int = MIN_CALIBRATION_PHOTOS,
    folds: int = CV_FOLDS,
) -> CalibrationChoice:
    """Fit T, and keep it only where it lowers validation ECE; otherwise T = 1.

    Three ways to end unscaled, each with its sentence: fewer than ``min_photos`` graded
    photos (no fit is tried), a fit outside ``T_PLAUSIBLE`` (degenerate), or a
    cross-validated ECE no lower than the unscaled one. A tie keeps T = 1: the network's
    own confidences need no justification.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    n = len(y)
    before = expected_calibration_error(softmax(z), y)

    def unscaled(
        sentence: str,
        fitted: float | None = None,
        after: float | None = None,
        in_sample: float | None = None,
    ) -> CalibrationChoice:
        return CalibrationChoice(1.0, fitted, before, after, in_sample, "unscaled", n, sentence)

    if n < min_photos:
        return unscaled(
            f"Temperature scaling skipped: the validation split has {n} graded photos and "
            f"calibration needs at least {min_photos}, so the model keeps T = 1 "
            f"(validation ECE {before:.3f})."
        )
    fitted = fit_temperature(z, y)
    in_sample = expected_calibration_error(softmax(z / fitted), y)
    lo, hi = T_PLAUSIBLE
    if not lo <= fitted <= hi:
        return unscaled(
            f"Temperature scaling refused: the fit on {n} validation photos ran to "
            f"T = {fitted:.3g}, outside the plausible {lo:g}-{hi:g} (a degenerate fit, "
            f"typically every photo graded right), so the model keeps T = 1 "
            f"(validation ECE {before:.3f}).",
            fitted,
            None,
            in_sample,
        )
    after = expected_calibration_error(cross_validated_probs(z, y, folds=folds), y)
    if after < before:
        return CalibrationChoice(
            round(fitted, 6),  # the graph and the card carry the same number
            fitted,
            before,
            after,
            in_sample,
            "scaled",
            n,
            f"Temperature scaling kept: T = {fitted:.3g} lowers validation ECE from "
            f"{before:.3f} to {after:.3f} ({folds}-fold cross-validated, {n} photos).",
        )
    return unscaled(
        f"Temperature scaling refused: T = {fitted:.3g} would raise validation ECE from "
        f"{before:.3f} to {after:.3f} ({folds}-fold cross-validated, {n} photos), so the "
        "model keeps T = 1.",
        fitted,
        after,
        in_sample,
    )


@dataclass(frozen=True)
class SuggestedThresholds:
    auto_approve_confidence: float
    auto_approve_coverage: float  # share of validation items decided at that threshold
    wrong_item_similarity: float | None
    damage_present: float = 0.5
    approve_precision: float = 0.98  # the target auto_approve_confidence was fitted for
    false_wrong_item_rate: float = 0.01  # the target wrong_item_similarity was fitted for
    val_photos: int = 0

    def targets(self) -> dict[str, dict[str, Any]]:
        """What each suggestion was fitted for, on what: ``card.metrics["thresholds"]``.

        A threshold without its target is a bare number; with it, ``returnlens policy
        check --model`` can say "0.82 for 98% auto-decision precision on validation".
        """
        out: dict[str, dict[str, Any]] = {
            "auto_approve_confidence": {
                "target_precision": self.approve_precision,
                "val_coverage": self.auto_approve_coverage,
                "val_photos": self.val_photos,
                "basis": "smallest confidence whose auto-decided validation photos reach "
                "the target precision (1.0: no confidence does; decide nothing alone)",
            }
        }
        if self.wrong_item_similarity is not None:
            out["wrong_item_similarity"] = {
                "target_false_flag_rate": self.false_wrong_item_rate,
                "val_photos": self.val_photos,
                "basis": "that quantile of same-SKU validation similarities",
            }
        return out

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
        approve_precision=approve_precision,
        false_wrong_item_rate=false_wrong_item_rate,
        val_photos=len(labels),
    )
