"""Refit the unfamiliarity score of an adapted model on the photos it was adapted to.

The backbone is unchanged, so the score's features are too; what changes is what counts
as familiar. The PPCA Gaussian of ``vision.unfamiliarity`` is refitted on the pooled
features adapt already read (the labelled training photos, plus the replayed original
ones when given) and its threshold set on the validation photos for the same 1.5% false
alarm target, on each kind of validation photo (labelled, replayed) separately. With
fewer photos than the fit needs, the model's own score is kept and the report says that
photos like the new ones may be flagged until more are labelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import onnx

from vision.card import ModelCard, UnfamiliaritySpec
from vision.unfamiliarity import (
    DEFAULT_TARGET_RATE,
    DESCRIPTION,
    METHOD,
    MIN_TRAIN,
    MIN_VAL,
    fit_params,
    group_threshold,
    score_features,
)
from vision.unfamiliarity_graph import append_score


def refit_unfamiliarity(
    model: onnx.ModelProto,
    card: ModelCard,
    pooled: str,
    train: np.ndarray,
    val: np.ndarray,
    views: int,
    val_groups: Sequence[np.ndarray] = (),
) -> tuple[onnx.ModelProto, UnfamiliaritySpec | None, str]:
    """The graph with the refitted score (or the model's own), its spec, one sentence.

    ``val_groups`` splits ``val`` by kind of photo (the labelled ones, the replayed
    original ones): the threshold then holds the target rate on each kind, not only on
    their mix, where a large group of easy photos would let the other kind's rate climb.
    """
    if len(train) < MIN_TRAIN or len(val) < MIN_VAL:
        return (
            model,
            card.unfamiliarity,
            f"Unfamiliarity score kept from {card.model_version}: refitting it needs "
            f">= {MIN_TRAIN} training and >= {MIN_VAL} validation photos, there are "
            f"{len(train)} and {len(val)}; photos like the new ones may be flagged "
            "unfamiliar until more are labelled (or pass --replay).",
        )
    params = fit_params(train)
    output = card.unfamiliarity.output if card.unfamiliarity is not None else "unfamiliarity"
    scored = append_score(model, pooled, params, output=output, fold_views=views)
    val_scores = score_features(val, params)
    groups = [score_features(g, params) for g in val_groups if len(g)] or [val_scores]
    threshold, rate = group_threshold(groups, val_scores)
    spec = UnfamiliaritySpec(
        method=METHOD,
        threshold=threshold,
        false_alarm_rate=round(rate, 6),
        output=output,
        fitted_on={
            "by": "returnlens adapt",
            "feature": pooled,
            "feature_dim": int(params.mean.shape[0]),
            "components": int(params.components.shape[1]),
            "l2_normalised": params.l2_normalise,
            "train_photos": len(train),
            "val_photos": len(val),
            "val_group_rates": [
                round(float(np.mean(g > np.float32(threshold))), 6) for g in groups
            ],
            "target_rate": DEFAULT_TARGET_RATE,
            "val_score_median": round(float(np.median(val_scores)), 4),
            "description": DESCRIPTION,
            "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    return (
        scored,
        spec,
        f"Unfamiliarity score refitted on {len(train)} photos; threshold {threshold:.3f} "
        f"flags {rate:.1%} of {len(val)} validation photos.",
    )
