"""What ``returnlens adapt`` accepts: label checks and the photo lists it fits on.

Every refusal is one sentence that names the problem (``DataError`` with a code), raised
before any photo is decoded: labels for grades or damage labels the model does not
have, too few labels of a grade, photos gone from the store, a replay manifest with
foreign grades.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from training.adapt_features import check_photos
from vision.card import ModelCard
from vision.errors import DataError
from vision.manifest import Manifest, ManifestRecord
from vision.unfamiliarity import spaced

MIN_PER_GRADE = 5


def check_labels(manifest: Manifest, card: ModelCard, min_per_grade: int) -> list[str]:
    """Refuse labels the model cannot learn; a note for grades nobody labelled."""
    head = manifest.header
    unknown = [g for g in head.grade_labels if g not in card.grade_labels]
    if unknown:
        raise DataError(
            f"the labels name grade(s) {unknown} that model {card.model_version} does not "
            f"have (it has {list(card.grade_labels)}); adapt keeps the model's grades: map "
            "them with `dataset import-folder --map`, or train a new model",
            code="label_mismatch",
        )
    extra = [d for d in head.damage_labels if d not in card.damage_labels]
    if extra:
        raise DataError(
            f"the labels name damage label(s) {extra} that model {card.model_version} does "
            f"not have (it has {list(card.damage_labels)}); adapt refits the model's own "
            "damage labels only: train a new model to learn new ones",
            code="label_mismatch",
        )
    counts = Counter(r.grade for r in manifest.split("train") if r.grade is not None)
    thin = {g: n for g, n in counts.items() if n < min_per_grade}
    if thin:
        g, n = min(thin.items(), key=lambda kv: kv[1])
        raise DataError(
            f"grade {g!r} has only {n} labelled training photo(s); adapt needs at least "
            f"{min_per_grade} of every grade it learns: label more photos of it, or leave "
            "it out",
            code="too_few_labels",
        )
    if len(counts) < 2:
        raise DataError(
            "adapt needs labelled training photos of at least 2 grades; the manifest has "
            f"{len(counts)} ({', '.join(sorted(map(str, counts))) or 'none'})",
            code="too_few_labels",
        )
    missing = [g for g in card.grade_labels if g not in counts]
    if not missing:
        return []
    return [
        f"No labelled photos of grade(s) {', '.join(missing)}: the adapted head learns that "
        "these photos do not show them (--replay the original training data to keep them)."
    ]


def grade_index(records: Sequence[ManifestRecord], card: ModelCard) -> np.ndarray:
    index = {g: i for i, g in enumerate(card.grade_labels)}
    return np.array([index[str(r.grade)] for r in records], dtype=np.int64)


def damage_targets(records: Sequence[ManifestRecord], card: ModelCard) -> np.ndarray:
    return np.array(
        [[d in r.damage for d in card.damage_labels] for r in records], dtype=np.float32
    ).reshape(len(records), len(card.damage_labels))


def _graded(records: Sequence[ManifestRecord]) -> list[ManifestRecord]:
    return [r for r in records if r.grade is not None]


@dataclass(frozen=True)
class AdaptData:
    train: list[ManifestRecord]
    val: list[ManifestRecord]
    test: list[ManifestRecord]
    replay: list[ManifestRecord]  # original training photos, fitted beside the new ones
    replay_val: list[ManifestRecord]  # original validation photos (unfamiliarity threshold)

    def counts(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
            "replay": len(self.replay),
            "replay_val": len(self.replay_val),
        }


def select(
    manifest: Manifest, card: ModelCard, replay: Manifest | None, replay_max: int
) -> AdaptData:
    """The graded photos of each split (and of the replay manifest); all must exist."""
    rep: list[ManifestRecord] = []
    rep_val: list[ManifestRecord] = []
    if replay is not None:
        bad = [g for g in replay.header.grade_labels if g not in card.grade_labels]
        if bad:
            raise DataError(
                f"the replay manifest names grade(s) {bad} that model {card.model_version} "
                "does not have; replay the model's own training manifest",
                code="label_mismatch",
            )
        rep = spaced(_graded(replay.split("train")), replay_max)
        rep_val = spaced(_graded(replay.split("val")), max(1, replay_max // 4))
    data = AdaptData(
        _graded(manifest.split("train")),
        _graded(manifest.split("val")),
        _graded(manifest.split("test")),
        rep,
        rep_val,
    )
    check_photos([*data.train, *data.val, *data.test, *data.replay, *data.replay_val])
    return data
