"""Champion against challenger: both models graded on the same held-out photos.

``returnlens model promote`` runs this before it switches the model serving loads. Each
model is run exactly as serving runs it (``training.evaluate.predict_records``: decode,
the card's preprocessing, ONNX Runtime) on every labelled photo of the held-out sets,
and scored on four numbers:

* accuracy of the top grade;
* MAE: mean |predicted - true| grade index (grades are ordinal);
* ECE: top-label expected calibration error of the (calibrated) probabilities;
* auto-decision precision: among photos whose top-grade confidence is at least the
  threshold below which a person decides (``confidence.min_grade_confidence``: the
  policy's value, else the model card's suggestion, else 0.7, as serving resolves it),
  the share graded correctly. Each model is scored at *its own* effective threshold,
  the one serving would use with it; the share of photos auto-decided is printed too.

The challenger is *worse* when it loses on any of the four by more than ``tolerance``;
``promote`` then refuses unless forced. Torch-free (numpy and ONNX Runtime).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluate import check_labels, encode_labels, predict_records
from training.metrics import accuracy, expected_calibration_error, mean_absolute_grade_error
from vision.card import ModelCard
from vision.errors import DataError, ModelError
from vision.manifest import Manifest, ManifestRecord, inspect_manifest
from vision.model import OnnxModel

# serving.policy.thresholds.FALLBACK["confidence.min_grade_confidence"]: training may not
# import serving, so the CLI root passes the policy's resolution in (ThresholdFn).
DEFAULT_AUTO_THRESHOLD = 0.7
CARD_THRESHOLD_KEY = "auto_approve_confidence"

# A model card -> (threshold, where it came from): "policy", "model card", "default", "flag".
ThresholdFn = Callable[[ModelCard], tuple[float, str]]


def card_threshold(card: ModelCard) -> tuple[float, str]:
    """The card's suggestion, else the default (the resolution without a policy file)."""
    value = card.thresholds.get(CARD_THRESHOLD_KEY)
    if value is not None and math.isfinite(value) and 0.0 <= value <= 1.0:
        return float(value), "model card"
    return DEFAULT_AUTO_THRESHOLD, "default"


@dataclass(frozen=True)
class HeldOut:
    """One held-out set: where it came from and its labelled photos."""

    source: str  # the manifest path, or "reviewed labels (...)"
    selection: str  # which records: "split test", "all reviewed labels", ...
    records: tuple[ManifestRecord, ...]

    @classmethod
    def from_manifest(cls, manifest: Manifest, split: str | None, source: str = "") -> HeldOut:
        recs = manifest.records if split is None else manifest.split(split)
        return cls(
            source or str(manifest.path),
            f"split {split}" if split else "all records",
            tuple(r for r in recs if r.grade is not None),
        )


@dataclass(frozen=True)
class ModelScore:
    version: str
    photos: int
    accuracy: float | None
    mae: float | None
    ece: float | None
    threshold: float
    threshold_source: str
    auto_share: float | None  # share of photos decided without a person
    auto_precision: float | None  # accuracy among those (None: none decided)


# (metric, higher is better)
METRICS = (("accuracy", True), ("mae", False), ("ece", False), ("auto_precision", True))
METRIC_NAMES = {
    "accuracy": "accuracy",
    "mae": "MAE",
    "ece": "ECE",
    "auto_precision": "auto-decision precision",
}


@dataclass(frozen=True)
class Comparison:
    champion: ModelScore
    challenger: ModelScore
    held_out: list[dict[str, Any]]
    tolerance: float = 0.0
    worse: list[str] = field(default_factory=list)  # metrics the challenger loses on

    @property
    def challenger_is_worse(self) -> bool:
        return bool(self.worse)

    def to_dict(self) -> dict[str, Any]:
        return {
            "champion": asdict(self.champion),
            "challenger": asdict(self.challenger),
            "held_out": self.held_out,
            "tolerance": self.tolerance,
            "worse": self.worse,
        }

    def lines(self) -> list[str]:
        """A side-by-side table (both models, every metric, the loser marked)."""
        c, n = self.champion, self.challenger
        photos = sum(h["photos"] for h in self.held_out)
        sets = "; ".join(f"{h['source']} ({h['selection']}, {h['photos']})" for h in self.held_out)
        rows = [
            ("", "champion " + c.version, "challenger " + n.version, ""),
            ("accuracy", _pct(c.accuracy), _pct(n.accuracy), _mark(self, "accuracy")),
            ("MAE", _num(c.mae), _num(n.mae), _mark(self, "mae")),
            ("ECE", _num(c.ece), _num(n.ece), _mark(self, "ece")),
            (
                "auto precision",
                _pct(c.auto_precision),
                _pct(n.auto_precision),
                _mark(self, "auto_precision"),
            ),
            ("auto-decided", _pct(c.auto_share), _pct(n.auto_share), ""),
            (
                "threshold",
                f"{c.threshold:.4f} ({c.threshold_source})",
                f"{n.threshold:.4f} ({n.threshold_source})",
                "",
            ),
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        out = [f"held-out photos: {photos} from {sets}"]
        out += [
            "  ".join(v.ljust(w) for v, w in zip(r[:3], widths, strict=True)) + f"  {r[3]}".rstrip()
            for r in rows
        ]
        return [line.rstrip() for line in out]


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _mark(cmp: Comparison, metric: str) -> str:
    return "<- challenger worse" if metric in cmp.worse else ""


def _finite(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(x) else None


def check_same_labels(champion: ModelCard, challenger: ModelCard) -> None:
    """One sentence when the challenger grades with other labels than the champion."""
    if tuple(champion.grade_labels) != tuple(challenger.grade_labels):
        raise ModelError(
            f"challenger {challenger.model_version} grades "
            f"{', '.join(challenger.grade_labels)} but champion {champion.model_version} "
            f"grades {', '.join(champion.grade_labels)}, so it cannot replace it "
            "(the policy and the stored decisions name the champion's grades).",
            code="label_mismatch",
        )
    if tuple(champion.damage_labels) != tuple(challenger.damage_labels):
        raise ModelError(
            f"challenger {challenger.model_version} reports damage "
            f"{', '.join(challenger.damage_labels) or 'none'} but champion "
            f"{champion.model_version} reports {', '.join(champion.damage_labels) or 'none'}, "
            "so it cannot replace it (the policy names the champion's damage labels).",
            code="label_mismatch",
        )


def score_model(
    model: OnnxModel, records: Sequence[ManifestRecord], threshold: tuple[float, str]
) -> ModelScore:
    """The four numbers for one model on labelled records."""
    outputs = predict_records(model, records, progress=False)
    grades, _ = encode_labels(records, model.card)
    lab = grades >= 0
    probs, y = outputs.grade_probs[lab].astype(np.float64), grades[lab]
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    value, source = threshold
    auto = conf >= value
    n = len(y)
    return ModelScore(
        version=model.version,
        photos=n,
        accuracy=_finite(accuracy(y, pred)) if n else None,
        mae=_finite(mean_absolute_grade_error(y, pred)) if n else None,
        ece=_finite(expected_calibration_error(probs, y)) if n else None,
        threshold=round(float(value), 6),
        threshold_source=source,
        auto_share=_finite(float(auto.mean())) if n else None,
        auto_precision=_finite(float((pred[auto] == y[auto]).mean())) if auto.any() else None,
    )


def _worse(champion: ModelScore, challenger: ModelScore, tolerance: float) -> list[str]:
    out = []
    for name, higher_better in METRICS:
        a, b = getattr(champion, name), getattr(challenger, name)
        if a is None or b is None:
            continue  # undefined on this set (e.g. nothing auto-decided): not comparable
        loss = (a - b) if higher_better else (b - a)
        if loss > tolerance + 1e-12:
            out.append(name)
    return out


def compare_models(
    champion: OnnxModel,
    challenger: OnnxModel,
    held_out: Sequence[HeldOut],
    *,
    threshold_for: ThresholdFn = card_threshold,
    tolerance: float = 0.0,
) -> Comparison:
    """Grade both models on the same photos; name the metrics the challenger loses on."""
    check_same_labels(champion.card, challenger.card)
    records: list[ManifestRecord] = []
    for h in held_out:
        records.extend(h.records)
    if not records:
        raise DataError(
            "the held-out sets have no labelled photos to compare the models on",
            code="empty_split",
        )
    a = score_model(champion, records, threshold_for(champion.card))
    b = score_model(challenger, records, threshold_for(challenger.card))
    return Comparison(
        champion=a,
        challenger=b,
        held_out=[
            {"source": h.source, "selection": h.selection, "photos": len(h.records)}
            for h in held_out
        ],
        tolerance=tolerance,
        worse=_worse(a, b, tolerance),
    )


def load_held_out(path: Path | str) -> Manifest:
    """A manifest to evaluate on: as ``load_manifest``, except that it need not have
    train and val records (a held-out set may be a test split alone)."""
    manifest, problems = inspect_manifest(path, check_files=True)
    errors = [p for p in problems if p.is_error and p.code != "empty_split"]
    if manifest is None or errors:
        shown = "; ".join(p.format() for p in errors[:3]) or "it cannot be read"
        raise DataError(
            f"manifest {path} cannot be evaluated on: {shown}; run 'returnlens dataset "
            f"validate {path}' to list every problem",
            code="invalid_manifest",
        )
    return manifest


def held_out_from(manifest: Manifest, card: ModelCard, split: str | None) -> HeldOut:
    """A manifest's held-out records, after checking its labels are the model's."""
    check_labels(manifest.header, card)
    return HeldOut.from_manifest(manifest, split)
