"""``returnlens adapt``: a new model version from reviewed labels in seconds, not hours.

The base model's backbone stays exactly as exported; only its heads are refitted on
backbone features of the labelled photos (``training.adapt_head``), read from the ONNX
graph and cached (``training.adapt_features``). The result keeps ``export``'s
guarantees, in the same order:

1. calibrate: temperature scaling on the out-of-fold logits of the labelled photos plus
   the validation photos, kept only where it lowers cross-validated ECE
   (``training.calibrate.choose_temperature``); the card's auto-decision threshold is
   fitted on the final graph's outputs on the labelled and replayed validation photos;
2. export: the base graph with the head initializers replaced (``training.adapt_graph``),
   the unfamiliarity score refitted (``training.adapt_score``), the test split evaluated
   through ``vision`` on the written file, ``onnx.checker``, then the drift reference;
3. parity: the written graph's probabilities against the heads computed in torch on the
   cached features, photo by photo, within ``PARITY_TOLERANCE``.

Only a file that passes all of it is renamed into place. ``train`` stays the full
fine-tune; adapt is what a deployment runs every week on its reviewers' verdicts.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from training.adapt_data import (
    MIN_PER_GRADE,
    AdaptData,
    check_labels,
    damage_targets,
    grade_index,
    select,
)
from training.adapt_features import FeatureReader, Features
from training.adapt_graph import (
    HeadNames,
    backbone_digest,
    head_names,
    initializer,
    with_initializers,
)
from training.adapt_head import DamageFit, GradeFit, damage_logits, fit_damage_head, fit_grade_head
from training.adapt_score import refit_unfamiliarity
from training.calibrate import CalibrationChoice, choose_temperature, suggest_thresholds
from training.evaluate import compute_metrics, headline, predict_records
from training.export import PARITY_TOLERANCE, ExportError, check_graph
from training.metrics import softmax
from vision.card import ModelCard, UnfamiliaritySpec
from vision.drift_fit import add_drift_reference
from vision.fsio import atomic_path
from vision.manifest import Manifest, ManifestRecord
from vision.model import OnnxModel
from vision.registry import card_of, write_card

DEFAULT_REPLAY_MAX = 2000
PARITY_PHOTOS = 32


@dataclass(frozen=True)
class AdaptOptions:
    replay: Manifest | None = None  # the original training data, replayed beside the labels
    replay_max: int = DEFAULT_REPLAY_MAX
    cache_dir: Path | None = None  # the feature cache; None: no cache
    model_version: str | None = None
    min_per_grade: int = MIN_PER_GRADE
    approve_precision: float = 0.98
    drift_reference: bool = True
    progress: bool = True
    seed: int = 0


@dataclass(frozen=True)
class AdaptReport:
    path: Path
    card: ModelCard
    seconds: float
    photos: dict[str, int]
    cache_hits: int
    notes: list[str] = field(default_factory=list)

    @property
    def adapt(self) -> dict[str, Any]:
        return dict(self.card.recipe.get("adapt", {}))

    def to_dict(self) -> dict[str, Any]:
        unf = self.card.unfamiliarity
        return {
            "path": str(self.path),
            "model_version": self.card.model_version,
            "seconds": round(self.seconds, 2),
            "photos": self.photos,
            "cache_hits": self.cache_hits,
            "adapt": self.adapt,
            "temperature": self.card.temperature,
            "thresholds": self.card.thresholds,
            "metrics": self.card.metrics,
            "unfamiliarity_threshold": None if unf is None else unf.threshold,
            "notes": self.notes,
        }


class _Features:
    """Reads features once per photo list, counting cache hits."""

    def __init__(self, reader: FeatureReader, feature_map: bool, progress: bool) -> None:
        self.reader, self.feature_map, self.progress, self.hits = reader, feature_map, progress, 0

    def __call__(self, records: list[ManifestRecord], desc: str) -> Features:
        feats, hits = self.reader.read(
            records, feature_map=self.feature_map, progress=self.progress, desc=desc
        )
        self.hits += hits
        return feats


def _mean(feats: Features | None) -> np.ndarray:
    return np.zeros((0, 1)) if feats is None else feats.pooled.mean(axis=1).astype(np.float64)


def _logits(x: np.ndarray, grade: GradeFit) -> np.ndarray:
    return x @ grade.weight.T.astype(np.float64) + grade.bias.astype(np.float64)


def _fit_damage(
    model: onnx.ModelProto,
    names: HeadNames,
    manifest: Manifest,
    card: ModelCard,
    feats: Features,
    records: list[ManifestRecord],
) -> DamageFit:
    weight = initializer(model, names.damage_weight)
    bias = initializer(model, names.damage_bias)
    if not manifest.header.damage_labels or feats.feature_map is None:
        return DamageFit(
            weight, bias, (), {d: "no damage labels given" for d in card.damage_labels}
        )
    return fit_damage_head(
        feats.feature_map,
        damage_targets(records, card),
        card.damage_labels,
        weight,
        bias,
        labelled=manifest.header.damage_labels,
    )


def _calibrate(
    grade: GradeFit, y_train: np.ndarray, val: np.ndarray, y_val: np.ndarray
) -> CalibrationChoice:
    """T on the out-of-fold logits of the labelled photos plus the validation photos."""
    z = np.concatenate([grade.oof_logits, _logits(val, grade)]) if len(y_val) else grade.oof_logits
    return choose_temperature(z, np.concatenate([y_train, y_val]))


def _reference(
    feats: Features, grade: GradeFit, damage: DamageFit, temperature: float
) -> list[np.ndarray]:
    """The adapted heads in torch on cached features: what the written graph must give."""
    assert feats.feature_map is not None
    probs = softmax(_logits(_mean(feats), grade) / temperature)
    with torch.no_grad():
        d = damage_logits(
            torch.from_numpy(feats.feature_map.astype(np.float32)),
            torch.from_numpy(damage.weight[:, :, 0, 0].copy()),
            torch.from_numpy(damage.bias.copy()),
        )
    return [probs, torch.sigmoid(d).numpy()]


def _parity(
    path: Path, records: list[ManifestRecord], expected: list[np.ndarray], n_damage: int
) -> dict[str, float]:
    out = predict_records(OnnxModel(path), records, progress=False)
    diffs = {"grade_probs": float(np.abs(out.grade_probs - expected[0]).max())}
    diffs["damage_probs"] = (
        float(np.abs(out.damage_probs - expected[1][:, :n_damage]).max()) if n_damage else 0.0
    )
    worst = max(diffs.values())
    if not np.isfinite(worst) or worst > PARITY_TOLERANCE:
        raise ExportError(
            f"parity check failed: the adapted graph and its heads in torch differ by up to "
            f"{worst:.3g} on {len(records)} photos (limit {PARITY_TOLERANCE:g}); nothing "
            "was written",
            details={"max_abs_diff": diffs},
        )
    return diffs


def _thresholds(
    path: Path,
    data: AdaptData,
    card: ModelCard,
    grade: GradeFit,
    temperature: float,
    y: np.ndarray,
    precision: float,
) -> tuple[dict[str, float], dict[str, Any]]:
    """The card's operating points: from the final graph on val, else out-of-fold.

    The validation photos are the labelled ones plus the replayed original ones: the new
    version serves both kinds of photo, so its auto-decision bar must hold on both (fitted
    on the labelled photos alone, a narrow set such as one camera's view would set the bar
    for every photo the model grades).
    """
    val = [*data.val, *data.replay_val] if data.val else []
    if val:
        out = predict_records(OnnxModel(path), val, progress=False)
        thr = suggest_thresholds(
            out.grade_probs,
            grade_index(val, card),
            out.embedding,
            [r.sku for r in val],
            approve_precision=precision,
        )
        return {**card.thresholds, **thr.as_card_dict()}, thr.targets()
    probs = softmax(grade.oof_logits / temperature)
    thr = suggest_thresholds(probs, y, np.zeros((0, 2)), [], approve_precision=precision)
    auto = {"auto_approve_confidence": thr.auto_approve_confidence}
    return {**card.thresholds, **auto}, {
        "auto_approve_confidence": thr.targets()["auto_approve_confidence"]
    }


def _with_test_rate(spec: UnfamiliaritySpec | None, test: Any) -> UnfamiliaritySpec | None:
    """The score's false-alarm rate on the labelled TEST photos (never fitted on), as
    ``export`` reports it for a trained model."""
    if spec is None or test.familiar is None:
        return spec
    flagged = ~np.asarray(test.familiar, dtype=bool)
    fitted_on = {
        **spec.fitted_on,
        "test_photos": int(flagged.size),
        "test_false_alarm_rate": round(float(flagged.mean()), 6),
    }
    return replace(spec, fitted_on=fitted_on)


def _recipe(
    base: ModelCard,
    base_sha: str,
    grade: GradeFit,
    damage: DamageFit,
    calibration: CalibrationChoice,
    data: AdaptData,
    parity: dict[str, float],
    seconds: float,
) -> dict[str, Any]:
    return {
        **base.recipe,
        "adapt": {
            "base_model_version": base.model_version,
            "base_sha256": base_sha,
            "photos": data.counts(),
            "grade_head": {
                "anchor": grade.anchor,
                "l2": grade.l2,
                "folds": grade.folds,
                "cv_log_loss": {k: round(v, 5) for k, v in grade.cv_log_loss.items()},
            },
            "damage_head": {"refitted": list(damage.refitted), "kept": damage.kept},
            "calibration": calibration.card_dict(),
            "parity": {"tolerance": PARITY_TOLERANCE, "max_abs_diff": parity},
            "fit_seconds": round(seconds, 2),
        },
    }


def adapt_model(
    base_path: Path, manifest: Manifest, out_path: Path, options: AdaptOptions | None = None
) -> AdaptReport:
    """Base model + labelled photos -> a calibrated, parity-checked new model version."""
    opts = options or AdaptOptions()
    started = time.monotonic()
    base_path, out_path = Path(base_path), Path(out_path)
    card = card_of(base_path)
    notes = check_labels(manifest, card, opts.min_per_grade)
    data = select(manifest, card, opts.replay, opts.replay_max)
    raw = base_path.read_bytes()
    base_sha = hashlib.sha256(raw).hexdigest()
    model = onnx.load_from_string(raw)
    names = head_names(model)
    refit_damage = bool(manifest.header.damage_labels) and bool(card.damage_labels)
    read = _Features(
        FeatureReader(
            model,
            backbone_digest(model, names, json.dumps(card.preprocess.to_dict(), sort_keys=True)),
            card,
            names.pooled,
            names.feature_map,
            opts.cache_dir,
        ),
        refit_damage,
        opts.progress,
    )
    train = read(data.train, "features train")
    val = read(data.val, "features val") if data.val else None
    replay = read(data.replay, "features replay") if data.replay else None
    replay_val = read(data.replay_val, "features replay val") if data.replay_val else None
    y_train, y_val = grade_index(data.train, card), grade_index(data.val, card)
    grade = fit_grade_head(
        _mean(train),
        y_train,
        initializer(model, names.grade_weight).astype(np.float64),
        initializer(model, names.grade_bias).astype(np.float64),
        x_replay=None if replay is None else _mean(replay),
        y_replay=None if replay is None else grade_index(data.replay, card),
        seed=opts.seed,
    )
    damage = _fit_damage(model, names, manifest, card, train, data.train)
    calibration = _calibrate(grade, y_train, _mean(val), y_val)
    temperature = calibration.temperature
    adapted = with_initializers(
        model,
        {
            names.grade_weight: grade.weight,
            names.grade_bias: grade.bias,
            names.temperature: np.array(temperature, dtype=np.float32),
            names.damage_weight: damage.weight,
            names.damage_bias: damage.bias,
        },
    )
    fam_train = np.concatenate(
        [x for x in (_mean(train), _mean(replay)) if len(x) and x.shape[1] > 1]
    )
    fam_val = [x for x in (_mean(val), _mean(replay_val)) if len(x) and x.shape[1] > 1]
    adapted, unfamiliarity, unf_note = refit_unfamiliarity(
        adapted,
        card,
        names.pooled,
        fam_train,
        np.concatenate(fam_val) if fam_val else np.zeros((0, fam_train.shape[1])),
        train.pooled.shape[1],
        val_groups=fam_val,
    )
    notes += [calibration.sentence, unf_note]
    parity_recs = (data.val or data.train)[:PARITY_PHOTOS]
    expected = _reference(read.reader.exact(parity_recs), grade, damage, temperature)
    new_card = replace(
        card,
        model_version=opts.model_version
        or f"{card.model_version}-adapt-{datetime.now(UTC):%Y%m%d-%H%M%S}",
        temperature=temperature,
        training_data=manifest.summary(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        unfamiliarity=unfamiliarity,
        drift_reference=None,
        notes=f"Adapted from {card.model_version} (heads refitted on "
        f"{len(data.train)} labelled photos).",
    )
    eval_recs = data.test or data.val
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:
        onnx.save(adapted, str(tmp))
        write_card(tmp, new_card)
        parity = _parity(tmp, parity_recs, expected, len(card.damage_labels))
        thresholds, targets = _thresholds(
            tmp, data, card, grade, temperature, y_train, opts.approve_precision
        )
        metrics: dict[str, Any] = {"calibration": calibration.card_dict(), "thresholds": targets}
        if eval_recs:
            split = "test" if data.test else "val"
            outputs = predict_records(
                OnnxModel(tmp), eval_recs, progress=opts.progress, desc=f"evaluate {split}"
            )
            metrics = {
                **headline(compute_metrics(outputs, eval_recs, new_card, split=split)),
                **metrics,
            }
            if data.test:
                new_card = replace(
                    new_card, unfamiliarity=_with_test_rate(new_card.unfamiliarity, outputs)
                )
        new_card = replace(
            new_card,
            thresholds=thresholds,
            metrics=metrics,
            recipe=_recipe(
                card, base_sha, grade, damage, calibration, data, parity, time.monotonic() - started
            ),
        )
        write_card(tmp, new_card)
        check_graph(tmp)
    if opts.drift_reference and data.val:
        new_card = replace(new_card, drift_reference=add_drift_reference(out_path, manifest))
    return AdaptReport(
        out_path, new_card, time.monotonic() - started, data.counts(), read.hits, notes
    )
