"""Fit an unfamiliarity score into an exported model: how far a photo lies from training.

Method (``METHOD``): a probabilistic-PCA Mahalanobis distance on the L2-normalised
pooled backbone features, the vector that feeds the grade and embedding heads.

* Features. The pooled features of the TRAIN photos (at most ``max_train``, evenly
  spaced) are read from the exported ONNX graph itself, decoded and preprocessed as
  serving does
  (``vision.pipeline.decode_for_grading`` + the card's ``preprocess_batch``). They are
  L2-normalised first, as in Mahalanobis++ (Müller & Hein, 2025): feature norms vary a
  lot between photos and drown the direction, which is what tells domains apart.
* Density. A Gaussian with a probabilistic-PCA covariance (Tipping & Bishop, 1999): the
  ``k`` leading principal directions keep their own variances, the remaining ``C - k``
  share one isotropic variance (their mean eigenvalue). The score is the Mahalanobis
  distance under that covariance, divided by ``C`` (so about 1 in distribution)::

      score = (sum_i t_i^2 / lambda_i + |r|^2 / sigma^2) / C

  with ``t`` the centred feature's coordinates in the subspace and ``r`` its residual
  outside. It is the Mahalanobis term of Lee et al. (2018) plus the residual energy of
  ViM (Wang et al., 2022) in one likelihood, and the regularised covariance is what a
  few thousand photos in 1280 dimensions can estimate (a full covariance cannot). A
  single class-agnostic Gaussian is used because grades differ by small damages, not by
  where a photo sits in feature space; what matters here is the photo's domain.
* Threshold. Set on the VAL split's scores, computed by the final graph (the very
  numbers serving computes), for ``target_rate`` false alarms (default 1.5%): the
  issue's ceiling of 2% is for in-distribution photos at large, and 800 validation
  photos estimate a 2% tail only to about half a point, so fitting at the ceiling itself
  would exceed it on fresh photos about half the time. The TEST split's rate (held out
  from everything) is recorded in ``fitted_on``. 1.5% rather than 1% because real
  photos crowd just above the in-distribution tail: on the shipped model a 1% fit let
  5.2% of the real car photos be auto-decided and wrong, a 1.5% fit 1.2% (measured with
  the car set in view: benchmarks/results/unfamiliar_real.md says so).

On the shipped model (benchmarks/results/unfamiliar_real.md) the threshold is 2.21 and
the median scores are: held-out synthetic photos 1.0, real car photos 2.9, everyday
photos (scikit-image) 4.1, solar-cell images 5.5.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from vision.card import CARD_KEY, ModelCard, UnfamiliaritySpec
from vision.errors import DataError, ModelError
from vision.fsio import atomic_path
from vision.manifest import Manifest, ManifestRecord
from vision.model import INPUT_NAME, OUTPUT_NAMES, OnnxModel, session_options
from vision.pipeline import decode_for_grading
from vision.preprocess import preprocess_batch
from vision.registry import write_card
from vision.unfamiliarity_graph import (
    ScoreParams,
    append_score,
    find_pooled,
    strip_score,
    with_extra_output,
)

log = logging.getLogger(__name__)
METHOD = "ppca-mahalanobis-l2"
DESCRIPTION = (
    "Mahalanobis distance of the L2-normalised pooled backbone features under a "
    "probabilistic-PCA covariance fitted on the training photos (k leading directions "
    "plus one isotropic residual variance: Lee et al. 2018's distance with ViM's residual "
    "energy), divided by the feature dimension, so about 1 in distribution; a foreign "
    "photo lands off the training manifold and scores high"
)
DEFAULT_COMPONENTS = 128
DEFAULT_TARGET_RATE = 0.015
MAX_FALSE_ALARM_RATE = 0.02  # the ceiling the issue sets for in-distribution photos
DEFAULT_MAX_TRAIN = 8000
MIN_TRAIN = 64
MIN_VAL = 50
# A kind of validation photo gets its own false-alarm check from this many photos: at
# 1.5%, three photos may be flagged, so one outlier does not set the threshold.
MIN_KIND = 200
BATCH = 32


def fit_params(features: np.ndarray, components: int = DEFAULT_COMPONENTS) -> ScoreParams:
    """Fit the PPCA Gaussian on ``[n, C]`` features (float64 maths, float32 parameters)."""
    x = np.asarray(features, dtype=np.float64)
    n, c = x.shape
    k = max(1, min(components, c - 1, n // 4))
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    mean = x.mean(axis=0)
    centred = x - mean
    eigval, eigvec = np.linalg.eigh(centred.T @ centred / max(n - 1, 1))
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.clip(eigval[order], 0.0, None), eigvec[:, order]
    residual_var = float(eigval[k:].sum() / (c - k))
    if not residual_var > 0:
        raise DataError("the training features are degenerate (no residual variance)")
    lam = np.maximum(eigval[:k], residual_var)  # >= sigma^2, so every weight is >= 0
    return ScoreParams(
        mean=mean.astype(np.float32),
        components=eigvec[:, :k].astype(np.float32),
        weights=((1.0 / lam - 1.0 / residual_var) / c).astype(np.float32),
        residual_weight=1.0 / (residual_var * c),
        l2_normalise=True,
    )


def score_features(features: np.ndarray, params: ScoreParams) -> np.ndarray:
    """NumPy reference of the in-graph score (float64), for tests and diagnostics."""
    x = np.asarray(features, dtype=np.float64)
    if params.l2_normalise:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    c = x - params.mean
    t = c @ params.components.astype(np.float64)
    return np.asarray((t * t) @ params.weights + (c * c).sum(axis=1) * params.residual_weight)


def fit_threshold(scores: np.ndarray, target_rate: float) -> tuple[float, float]:
    """The lowest threshold flagging at most ``target_rate`` of ``scores``; its rate."""
    s = np.sort(np.asarray(scores, dtype=np.float32))
    allowed = math.floor(target_rate * len(s) + 1e-9)
    threshold = float(s[len(s) - 1 - allowed])
    return threshold, float(np.mean(s > np.float32(threshold)))


def group_threshold(
    groups: Sequence[np.ndarray], scores: np.ndarray, target_rate: float = DEFAULT_TARGET_RATE
) -> tuple[float, float]:
    """The lowest threshold flagging at most ``target_rate`` of every group; its rate on
    all of ``scores``. One threshold for a mix of kinds of photo (shopper renders, dock
    crops): fitted on the mix alone, a large group of easy photos lets the other kind's
    false alarms climb far past the target."""
    threshold = max(fit_threshold(g, target_rate)[0] for g in groups)
    return threshold, float(np.mean(scores > np.float32(threshold)))


def photo_kinds(records: Sequence[ManifestRecord]) -> list[np.ndarray]:
    """Indices of ``records`` by kind of photo: the dataset folder its image lies in (a
    merged training manifest keeps each input set's photos in their own folder). Kinds
    with fewer than ``MIN_KIND`` photos join the largest, whose rate they cannot move."""
    folders: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        folders.setdefault(str(r.image.parent), []).append(i)
    kinds = sorted(folders.values(), key=len, reverse=True)
    big = [k for k in kinds if len(k) >= MIN_KIND] or kinds[:1]
    rest = [i for k in kinds if k not in big for i in k]
    big[0] = sorted(big[0] + rest)
    return [np.asarray(k) for k in big]


class _Runner:
    """An ONNX Runtime session over an in-memory graph, fed the way serving feeds it."""

    def __init__(self, model: onnx.ModelProto, card: ModelCard, outputs: Sequence[str]) -> None:
        self.session = ort.InferenceSession(
            model.SerializeToString(),
            sess_options=session_options(),
            providers=["CPUExecutionProvider"],
        )
        self.card, self.outputs = card, list(outputs)

    def run(self, records: Sequence[ManifestRecord], batch_size: int = BATCH) -> list[np.ndarray]:
        size = self.card.preprocess.input_size
        parts: list[list[np.ndarray]] = []
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            rgb = [decode_for_grading(r.image.read_bytes(), size).rgb for r in chunk]
            batch = preprocess_batch(rgb, self.card.preprocess)
            parts.append(self.session.run(self.outputs, {INPUT_NAME: batch}))
        return [np.concatenate(col) for col in zip(*parts, strict=True)]


@dataclass(frozen=True)
class FitReport:
    path: Path
    spec: UnfamiliaritySpec
    val_scores: np.ndarray
    test_scores: np.ndarray | None


def spaced(records: Sequence[ManifestRecord], limit: int) -> list[ManifestRecord]:
    """At most ``limit`` records, evenly spaced (deterministic, every part of the split)."""
    if len(records) <= limit:
        return list(records)
    idx = np.linspace(0, len(records) - 1, limit).round().astype(int)
    return [records[i] for i in idx]


def _splits(manifest: Manifest, max_train: int) -> tuple[list[ManifestRecord], ...]:
    train = spaced(manifest.split("train"), max_train)
    val, test = list(manifest.split("val")), list(manifest.split("test"))
    if len(train) < MIN_TRAIN or len(val) < MIN_VAL:
        raise DataError(
            f"fitting the unfamiliarity score needs >= {MIN_TRAIN} train and >= {MIN_VAL} "
            f"val photos; {manifest.path} has {len(train)} and {len(val)}",
            code="too_few_photos",
        )
    return train, val, test


def fit_unfamiliarity(
    model_path: Path,
    manifest: Manifest,
    out_path: Path,
    *,
    target_rate: float = DEFAULT_TARGET_RATE,
    components: int = DEFAULT_COMPONENTS,
    max_train: int = DEFAULT_MAX_TRAIN,
    output: str = "unfamiliarity",
) -> FitReport:
    """Model + in-distribution manifest -> the same model with the score and its card spec.

    The four contract outputs of the written file are checked to be bit-identical to the
    input model's on a validation batch; the file is only renamed into place if that
    check, ``onnx.checker`` and ``OnnxModel``'s contract check pass.
    """
    if not 0 < target_rate <= MAX_FALSE_ALARM_RATE:
        raise DataError(f"target_rate must be in (0, {MAX_FALSE_ALARM_RATE}]", code="bad_rate")
    train, val, test = _splits(manifest, max_train)
    source = onnx.load(str(model_path))
    card = _card(source, model_path)
    base = strip_score(source, card.unfamiliarity.output) if card.unfamiliarity else source
    pooled = find_pooled(base)

    feats = _Runner(with_extra_output(base, pooled), card, [pooled, *OUTPUT_NAMES])
    train_out = feats.run(train)
    fold = train_out[0].shape[0] // len(train)  # test-time-augmented exports: views x batch
    features = train_out[0].reshape(fold, len(train), -1).mean(axis=0)
    params = fit_params(features, components)
    scored = append_score(base, pooled, params, output=output, fold_views=fold)

    runner = _Runner(scored, card, [output, *OUTPUT_NAMES])
    val_out = runner.run(val)
    _check_identical(base, card, val[:BATCH], val_out[1:])
    kinds = photo_kinds(val)
    threshold, val_rate = group_threshold([val_out[0][k] for k in kinds], val_out[0], target_rate)
    test_scores = runner.run(test)[0] if test else None
    spec = UnfamiliaritySpec(
        method=METHOD,
        threshold=threshold,
        false_alarm_rate=round(val_rate, 6),
        output=output,
        fitted_on={
            **_fitted_on(
                manifest,
                params,
                pooled,
                len(train),
                val_out[0],
                test_scores,
                target_rate,
                threshold,
            ),
            "val_kinds": _kind_rates(val, kinds, val_out[0], threshold),
        },
    )
    with atomic_path(Path(out_path)) as tmp:
        onnx.save(scored, str(tmp))
        write_card(tmp, replace(card, unfamiliarity=spec))
        onnx.checker.check_model(str(tmp), full_check=True)
        if not OnnxModel(tmp, intra_op_threads=1).has_unfamiliarity:
            raise ModelError("the fitted model does not expose its unfamiliarity output")
    return FitReport(Path(out_path), spec, val_out[0], test_scores)


def add_unfamiliarity(model_path: Path, manifest: Manifest) -> UnfamiliaritySpec | None:
    """Fit the score into ``model_path`` in place (the export path); its card spec.

    A manifest too small to fit on is not an export failure: the model ships without a
    score, a warning says so, and every runtime abstains on its photos until a model
    with one is promoted.
    """
    try:
        return fit_unfamiliarity(model_path, manifest, model_path).spec
    except DataError as exc:
        if exc.code != "too_few_photos":
            raise
        log.warning("%s: no unfamiliarity score; runtimes will abstain", exc.message)
        return None


def _card(model: onnx.ModelProto, path: Path) -> ModelCard:
    props = {p.key: p.value for p in model.metadata_props}
    if CARD_KEY not in props:
        raise ModelError(f"{path} has no model card", code="invalid_model")
    return ModelCard.from_json(props[CARD_KEY])


def _check_identical(
    base: onnx.ModelProto, card: ModelCard, records: Sequence[ManifestRecord], got: list[np.ndarray]
) -> None:
    """The contract outputs with and without the appended nodes must match bit for bit."""
    before = _Runner(base, card, OUTPUT_NAMES).run(records)
    for name, a, b in zip(OUTPUT_NAMES, before, got, strict=True):
        if not np.array_equal(a, b[: len(a)]):
            raise ModelError(f"appending the unfamiliarity score changed the {name} output")


def _kind_rates(
    val: Sequence[ManifestRecord], kinds: Sequence[np.ndarray], scores: np.ndarray, threshold: float
) -> dict[str, dict[str, float]]:
    """Per kind of validation photo (its dataset folder): photos and false-alarm rate."""
    return {
        val[int(k[0])].image.parent.parent.name: {
            "photos": len(k),
            "false_alarm_rate": round(float(np.mean(scores[k] > np.float32(threshold))), 6),
        }
        for k in kinds
    }


def _fitted_on(
    manifest: Manifest,
    params: ScoreParams,
    pooled: str,
    n_train: int,
    val_scores: np.ndarray,
    test_scores: np.ndarray | None,
    target_rate: float,
    threshold: float,
) -> dict[str, Any]:
    """What the card says about the fit: data, sizes, rates (JSON-ready)."""
    test_rate = None if test_scores is None else float(np.mean(test_scores > threshold))
    return {
        "manifest": manifest.path.name,
        "source": manifest.header.source,
        "feature": pooled,
        "feature_dim": int(params.mean.shape[0]),
        "components": int(params.components.shape[1]),
        "l2_normalised": params.l2_normalise,
        "train_photos": n_train,
        "val_photos": len(val_scores),
        "target_rate": target_rate,
        "max_rate": MAX_FALSE_ALARM_RATE,
        "val_score_median": round(float(np.median(val_scores)), 4),
        "test_photos": 0 if test_scores is None else len(test_scores),
        "test_false_alarm_rate": None if test_rate is None else round(test_rate, 6),
        "description": DESCRIPTION,
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
