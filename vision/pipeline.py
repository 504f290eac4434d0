"""``grade()``: the one chain every front end runs (shopper API, dock station, CLI).

bytes -> decode -> quality gate -> preprocess -> ONNX (one batch) -> aggregate.
Photos that fail the gate are still scored (reviewers see them) but only photos that
pass are aggregated into the item's scores; with none passing there is no item score
and the policy asks for a retake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vision.aggregate import aggregate
from vision.card import ModelCard
from vision.decode import DecodeLimits, decode_image
from vision.model import OnnxModel
from vision.phash import phash
from vision.quality import PROFILES, QualityThresholds, assess_quality
from vision.types import DecodedPhoto, ItemScores, PhotoScores, QualityReport


@dataclass(frozen=True, eq=False)
class GradedPhoto:
    photo: DecodedPhoto
    quality: QualityReport
    phash: int
    scores: PhotoScores


@dataclass(frozen=True, eq=False)
class GradeResult:
    photos: tuple[GradedPhoto, ...]
    item: ItemScores | None  # None when no photo passed the quality gate
    model_version: str

    @property
    def usable(self) -> tuple[GradedPhoto, ...]:
        return tuple(p for p in self.photos if p.quality.passed)


# The quality gate measures at a 512 px working size and the model input is smaller, so a
# 12-megapixel JPEG is DCT-downscaled to 1/4 (1008x756) while decoding: about a third of
# the cost of a full decode, and stored photos stay large enough for reviewers.
DECODE_LONG_SIDE = 512


def decode_for_grading(data: bytes, input_size: int, limits: DecodeLimits | None = None,
                       target_long_side: int = DECODE_LONG_SIDE) -> DecodedPhoto:
    """Decode an upload the way every grading path does (serving, dock, training, eval)."""
    return decode_image(data, limits=limits or DecodeLimits(),
                        target_long_side=max(target_long_side, input_size))


class Grader:
    """A model plus a quality profile; cheap to share across threads."""

    def __init__(self, model: OnnxModel, *, profile: str = "shopper",
                 thresholds: QualityThresholds | None = None,
                 limits: DecodeLimits | None = None,
                 target_long_side: int = DECODE_LONG_SIDE) -> None:
        self.model = model
        self.profile = profile
        self.thresholds = thresholds or PROFILES[profile]
        self.limits = limits or DecodeLimits()
        self.target_long_side = target_long_side

    @classmethod
    def load(cls, path: Path | str, *, profile: str = "shopper",
             intra_op_threads: int | None = None) -> Grader:
        return cls(OnnxModel(path, intra_op_threads=intra_op_threads), profile=profile)

    @property
    def card(self) -> ModelCard:
        return self.model.card

    def decode(self, data: bytes) -> DecodedPhoto:
        return decode_for_grading(data, self.model.card.preprocess.input_size, self.limits,
                                  self.target_long_side)

    def grade(self, uploads: Sequence[bytes]) -> GradeResult:
        """Decode every upload first, so one bad file refuses the request before any work."""
        return self.grade_decoded([self.decode(data) for data in uploads])

    def grade_decoded(self, photos: Sequence[DecodedPhoto]) -> GradeResult:
        if not photos:
            raise ValueError("grade needs at least one photo")
        reports = [assess_quality(p, self.thresholds, profile=self.profile) for p in photos]
        outputs = self.model.predict_images([p.rgb for p in photos])
        graded = tuple(
            GradedPhoto(photo=p, quality=q, phash=phash(p.rgb), scores=outputs.photo(i))
            for i, (p, q) in enumerate(zip(photos, reports, strict=True))
        )
        usable = [g.scores for g in graded if g.quality.passed]
        card = self.model.card
        item = aggregate(usable, card.grade_labels, card.damage_labels) if usable else None
        return GradeResult(photos=graded, item=item, model_version=card.model_version)

    def embed(self, photo: DecodedPhoto) -> np.ndarray:
        """Embedding of one photo, e.g. a catalog reference photo."""
        return self.model.predict_images([photo.rgb]).embedding[0]
