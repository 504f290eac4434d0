"""``grade()``: the one chain every front end runs (shopper API, dock station, CLI).

bytes -> decode -> quality gate -> preprocess -> ONNX (one batch) -> aggregate.
Photos that fail the gate are still scored (reviewers see them) but only photos that
pass are aggregated into the item's scores; with none passing there is no item score
and the policy asks for a retake.

The quality gate and the perceptual hash do not depend on the model's output, so they
run on a helper thread while ONNX Runtime scores the batch (both release the GIL in
OpenCV / ORT). On the benchmark box the gate costs about as much as one inference, so
overlapping them is most of the difference between the service and the decode+infer
floor for a single-photo request.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
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


def decode_for_grading(
    data: bytes,
    input_size: int,
    limits: DecodeLimits | None = None,
    target_long_side: int = DECODE_LONG_SIDE,
) -> DecodedPhoto:
    """Decode an upload the way every grading path does (serving, dock, training, eval)."""
    return decode_image(
        data, limits=limits or DecodeLimits(), target_long_side=max(target_long_side, input_size)
    )


# Shared by every Grader of the process: the work it takes (gate + hash of one request's
# photos) is short and CPU-bound, so a few threads suffice however many requests overlap.
_GATE_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="returnlens-gate")


class Grader:
    """A model plus a quality profile; cheap to share across threads."""

    def __init__(
        self,
        model: OnnxModel,
        *,
        profile: str = "shopper",
        thresholds: QualityThresholds | None = None,
        limits: DecodeLimits | None = None,
        target_long_side: int = DECODE_LONG_SIDE,
        gate_pool: Executor | None = _GATE_POOL,
    ) -> None:
        self.model = model
        self.profile = profile
        self.thresholds = thresholds or PROFILES[profile]
        self.limits = limits or DecodeLimits()
        self.target_long_side = target_long_side
        self.gate_pool = gate_pool  # None: gate and inference run one after the other

    @classmethod
    def load(
        cls, path: Path | str, *, profile: str = "shopper", intra_op_threads: int | None = None
    ) -> Grader:
        return cls(OnnxModel(path, intra_op_threads=intra_op_threads), profile=profile)

    @property
    def card(self) -> ModelCard:
        return self.model.card

    def decode(self, data: bytes) -> DecodedPhoto:
        return decode_for_grading(
            data, self.model.card.preprocess.input_size, self.limits, self.target_long_side
        )

    def grade(self, uploads: Sequence[bytes]) -> GradeResult:
        """Decode every upload first, so one bad file refuses the request before any work."""
        return self.grade_decoded([self.decode(data) for data in uploads])

    def grade_decoded(self, photos: Sequence[DecodedPhoto]) -> GradeResult:
        if not photos:
            raise ValueError("grade needs at least one photo")
        if self.gate_pool is None:
            gates = self._gate(photos)
            outputs = self.model.predict_images([p.rgb for p in photos])
        else:
            pending = self.gate_pool.submit(self._gate, photos)
            outputs = self.model.predict_images([p.rgb for p in photos])
            gates = pending.result()
        graded = tuple(
            GradedPhoto(photo=p, quality=q, phash=h, scores=outputs.photo(i))
            for i, (p, (q, h)) in enumerate(zip(photos, gates, strict=True))
        )
        usable = [g.scores for g in graded if g.quality.passed]
        card = self.model.card
        item = aggregate(usable, card.grade_labels, card.damage_labels) if usable else None
        return GradeResult(photos=graded, item=item, model_version=card.model_version)

    def _gate(self, photos: Sequence[DecodedPhoto]) -> list[tuple[QualityReport, int]]:
        return [
            (assess_quality(p, self.thresholds, profile=self.profile), phash(p.rgb)) for p in photos
        ]

    def embed(self, photo: DecodedPhoto) -> np.ndarray:
        """Embedding of one photo, e.g. a catalog reference photo."""
        return self.model.predict_images([photo.rgb]).embedding[0]
