"""Drift of the serving model's inputs and outputs against the reference stored at export.

One set of pure, torch-free functions serves both sides, so the reference and the live
window are counted the same way:

* ``fit_reference(observations, ...)`` summarises a validation set (the model's outputs
  plus the quality measures of each photo) as histograms: the JSON dict stored in the
  model card (``ModelCard.drift_reference``). It keeps counts, never the photos or raw
  values, so the card stays small (a few hundred numbers).
* ``compare(reference, observations, ...)`` counts a live window (the service reads it
  from the stored photo rows: ``serving/services/drift.py``) into the reference's bins and
  tests each signal.

Signals (one per photo): ``grade`` (the argmax grade), ``damage:<label>`` (probability
>= 0.5), ``abstain`` (unfamiliar, no unfamiliarity score, or a top grade probability
below ``min_confidence``), and the continuous ``unfamiliarity``, ``brightness``,
``sharpness`` and ``long_side``. A continuous signal's bins are the reference's deciles
(edges stored with the counts), so every signal is a histogram.

The test per signal is Pearson's chi-square goodness of fit of the window's counts to the
reference's proportions (dof = bins - 1). For the continuous signals this is the binned
analogue of a two-sample KS test: the card keeps the histogram, not the sample a KS test
needs, and decile bins give the test power across the whole distribution. Large windows
make chi-square flag shifts too small to matter, so a signal is *drifted* only when the
p-value is below ``alpha`` **and** the population stability index (PSI, the usual effect
size; 0.1 = moderate, 0.25 = large shift) is at least ``min_psi``, and the window holds at
least ``min_count`` values of it. Proportions are smoothed by half a count per bin, so an
empty bin does not make PSI infinite.

Estimated accuracy, when labels lag: the mean top-class calibrated probability (the
temperature-scaled grade probabilities are calibrated at export, so their mean top-class
probability estimates accuracy). The reference stores its own value (and the measured
accuracy where labels were given), so a fall in the estimate is visible next to it.

The chi-square survival function is computed here (regularised upper incomplete gamma)
because SciPy is a training extra and the service must not need it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vision.errors import ModelError

REFERENCE_VERSION = 1
CONTINUOUS = ("unfamiliarity", "brightness", "sharpness", "long_side")
BINARY_BINS = ("no", "yes")
DEFAULT_BINS = 10
DEFAULT_MIN_CONFIDENCE = 0.5
ALPHA = 0.01
MIN_PSI = 0.1
MIN_COUNT = 30


@dataclass(frozen=True)
class Observation:
    """One photo: the model's outputs (empty: not graded) and its input measures."""

    grade_probs: Sequence[float] = ()
    damage_probs: Sequence[float] = ()
    unfamiliarity: float | None = None
    familiar: bool | None = None
    brightness: float | None = None
    sharpness: float | None = None
    long_side: float | None = None


@dataclass(frozen=True)
class SignalResult:
    signal: str
    test: str
    count: int
    statistic: float | None
    p_value: float | None
    psi: float | None
    drifted: bool
    window: list[float] = field(default_factory=list)  # the window's proportions per bin
    reference: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class DriftReport:
    photos: int
    signals: list[SignalResult]
    estimated_accuracy: float | None  # window: mean top-class calibrated probability
    reference_estimated_accuracy: float | None
    reference_accuracy: float | None  # measured on the reference's labels, if given
    alpha: float = ALPHA
    min_psi: float = MIN_PSI

    @property
    def drifted(self) -> list[str]:
        return [s.signal for s in self.signals if s.drifted]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["drifted"] = self.drifted
        return data

    def lines(self) -> list[str]:
        """The short text report of ``returnlens drift``."""
        out = [
            f"drift over {self.photos} photo(s) (chi-square p < {self.alpha}, PSI >= "
            f"{self.min_psi})"
        ]
        for s in self.signals:
            if s.statistic is None:
                out.append(f"  {s.signal:<24} n={s.count:<6} too few values")
                continue
            out.append(
                f"  {s.signal:<24} n={s.count:<6} chi2={s.statistic:10.2f} "
                f"p={s.p_value:.3g} psi={s.psi:.3f}  {'DRIFT' if s.drifted else 'ok'}"
            )

        def pct(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.3f}"

        out.append(
            f"estimated accuracy {pct(self.estimated_accuracy)} (reference: estimated "
            f"{pct(self.reference_estimated_accuracy)}, measured {pct(self.reference_accuracy)})"
        )
        return out


# The quality check whose ``value`` is each input measure (vision/quality.py,
# ``assess_quality``: the raw ``measure`` values, profile-independent).
CHECK_MEASURES = {"blur": "sharpness", "underexposed": "brightness"}


def observation_of(
    checks: Iterable[Mapping[str, Any]],
    long_side: float,
    grade_probs: Sequence[float] = (),
    damage_probs: Sequence[float] = (),
    unfamiliarity: float | None = None,
    familiar: bool | None = None,
) -> Observation:
    """One photo from its quality checks (``QualityReport.to_dict()["checks"]``), its
    original long side and the model's outputs: the same reading for the reference fit
    and the stored rows."""
    measures: dict[str, float] = {}
    for check in checks:
        name = CHECK_MEASURES.get(str(check.get("name")))
        if name is not None and check.get("value") is not None:
            measures[name] = float(check["value"])
    return Observation(
        grade_probs=[float(v) for v in grade_probs],
        damage_probs=[float(v) for v in damage_probs],
        unfamiliarity=None if unfamiliarity is None else float(unfamiliarity),
        familiar=familiar,
        brightness=measures.get("brightness"),
        sharpness=measures.get("sharpness"),
        long_side=float(long_side),
    )


# ----------------------------------------------------------------------- statistics
def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (series / continued fraction)."""
    if x <= 0:
        return 1.0
    lg = math.lgamma(a)
    if x < a + 1:  # series for P, Q = 1 - P
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - lg))
    tiny = 1e-300  # Lentz's continued fraction for Q
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - lg) * h)


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X ~ chi-square(dof)."""
    return _gamma_q(dof / 2.0, statistic / 2.0)


def chi_square(counts: Sequence[float], ref_counts: Sequence[float]) -> tuple[float, float]:
    """Goodness of fit of ``counts`` to the smoothed proportions of ``ref_counts``."""
    obs = np.asarray(counts, np.float64)
    ref = np.asarray(ref_counts, np.float64) + 0.5
    expected = obs.sum() * ref / ref.sum()
    stat = float(((obs - expected) ** 2 / expected).sum())
    return stat, chi2_sf(stat, max(len(obs) - 1, 1))


def psi(counts: Sequence[float], ref_counts: Sequence[float]) -> float:
    """Population stability index between two histograms (half-count smoothing)."""
    p = np.asarray(counts, np.float64) + 0.5
    q = np.asarray(ref_counts, np.float64) + 0.5
    p, q = p / p.sum(), q / q.sum()
    return float(((p - q) * np.log(p / q)).sum())


# ----------------------------------------------------------------------- counting
def _top(obs: Observation) -> float | None:
    return float(max(obs.grade_probs)) if len(obs.grade_probs) else None


def _abstains(obs: Observation, min_confidence: float) -> bool:
    top = _top(obs)
    return obs.familiar is not True or (top is not None and top < min_confidence)


def _values(observations: Sequence[Observation], name: str) -> np.ndarray:
    vals = [getattr(o, name) for o in observations]
    return np.array([float(v) for v in vals if v is not None and math.isfinite(v)], np.float64)


def _categorical(
    observations: Sequence[Observation],
    grade_labels: Sequence[str],
    damage_labels: Sequence[str],
    min_confidence: float,
) -> dict[str, tuple[list[str], list[int]]]:
    graded = [o for o in observations if len(o.grade_probs) == len(grade_labels) > 0]
    grades = np.bincount(
        [int(np.argmax(o.grade_probs)) for o in graded], minlength=len(grade_labels)
    )
    out: dict[str, tuple[list[str], list[int]]] = {
        "grade": (list(grade_labels), [int(c) for c in grades])
    }
    for i, label in enumerate(damage_labels):
        pos = sum(
            1
            for o in graded
            if len(o.damage_probs) == len(damage_labels) and o.damage_probs[i] >= 0.5
        )
        with_damage = sum(1 for o in graded if len(o.damage_probs) == len(damage_labels))
        out[f"damage:{label}"] = (list(BINARY_BINS), [with_damage - pos, pos])
    abstain = sum(1 for o in graded if _abstains(o, min_confidence))
    out["abstain"] = (list(BINARY_BINS), [len(graded) - abstain, abstain])
    return out


def _binned(values: np.ndarray, edges: Sequence[float]) -> list[int]:
    idx = np.searchsorted(np.asarray(edges, np.float64), values, side="right")
    return [int(c) for c in np.bincount(idx, minlength=len(edges) + 1)]


def _estimated_accuracy(observations: Sequence[Observation]) -> float | None:
    tops = [t for o in observations if (t := _top(o)) is not None]
    return round(float(np.mean(tops)), 6) if tops else None


def fit_reference(
    observations: Iterable[Observation],
    grade_labels: Sequence[str],
    damage_labels: Sequence[str],
    *,
    labels: Sequence[int | None] | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    bins: int = DEFAULT_BINS,
    source: str = "",
) -> dict[str, Any]:
    """The reference (JSON-ready) of a validation set; ``labels``: true grade indexes."""
    obs = list(observations)
    if not obs:
        raise ModelError("a drift reference needs at least one photo", code="invalid_data")
    signals: dict[str, Any] = {}
    for name, (names, counts) in _categorical(
        obs, grade_labels, damage_labels, min_confidence
    ).items():
        signals[name] = {"kind": "categorical", "bins": names, "counts": counts}
    for name in CONTINUOUS:
        values = _values(obs, name)
        if values.size == 0:
            continue  # e.g. a model without an unfamiliarity score: the signal is absent
        qs = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
        edges = sorted({round(float(q), 6) for q in qs})
        signals[name] = {"kind": "continuous", "edges": edges, "counts": _binned(values, edges)}
    accuracy = None
    if labels is not None:
        pairs = [
            (int(np.argmax(o.grade_probs)), y)
            for o, y in zip(obs, labels, strict=True)
            if y is not None and len(o.grade_probs)
        ]
        if pairs:
            accuracy = round(sum(p == y for p, y in pairs) / len(pairs), 6)
    return {
        "version": REFERENCE_VERSION,
        "photos": len(obs),
        "source": source,
        "min_confidence": min_confidence,
        "grade_labels": list(grade_labels),
        "damage_labels": list(damage_labels),
        "estimated_accuracy": _estimated_accuracy(obs),
        "accuracy": accuracy,
        "signals": signals,
    }


def _result(
    signal: str,
    counts: list[int],
    ref_counts: list[int],
    alpha: float,
    min_psi: float,
    min_count: int,
) -> SignalResult:
    n = int(sum(counts))
    ref = np.asarray(ref_counts, np.float64) + 0.5
    ref_p = [round(float(v), 6) for v in ref / ref.sum()]
    win_p = [round(c / n, 6) for c in counts] if n else []
    if n < min_count or len(counts) < 2:
        return SignalResult(signal, "chi2", n, None, None, None, False, win_p, ref_p)
    stat, p = chi_square(counts, ref_counts)
    index = psi(counts, ref_counts)
    return SignalResult(
        signal,
        "chi2",
        n,
        round(stat, 6),
        p,
        round(index, 6),
        p < alpha and index >= min_psi,
        win_p,
        ref_p,
    )


def compare(
    reference: dict[str, Any],
    observations: Iterable[Observation],
    grade_labels: Sequence[str],
    damage_labels: Sequence[str],
    *,
    alpha: float = ALPHA,
    min_psi: float = MIN_PSI,
    min_count: int = MIN_COUNT,
) -> DriftReport:
    """Test the window ``observations`` against ``reference`` (from ``fit_reference``)."""
    if int(reference.get("version", 0)) != REFERENCE_VERSION:
        raise ModelError(
            f"drift reference version {reference.get('version')} is not supported",
            code="unsupported_model",
        )
    obs = list(observations)
    min_confidence = float(reference.get("min_confidence", DEFAULT_MIN_CONFIDENCE))
    live = _categorical(obs, grade_labels, damage_labels, min_confidence)
    results: list[SignalResult] = []
    for name, spec in reference.get("signals", {}).items():
        if spec.get("kind") == "continuous":
            counts = _binned(_values(obs, name), spec["edges"])
        elif name in live and live[name][0] == list(spec["bins"]):
            counts = live[name][1]
        else:
            continue  # labels changed: not comparable
        results.append(_result(name, counts, list(spec["counts"]), alpha, min_psi, min_count))
    return DriftReport(
        photos=len(obs),
        signals=results,
        estimated_accuracy=_estimated_accuracy(obs),
        reference_estimated_accuracy=reference.get("estimated_accuracy"),
        reference_accuracy=reference.get("accuracy"),
        alpha=alpha,
        min_psi=min_psi,
    )
