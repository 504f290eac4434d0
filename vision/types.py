"""Frozen values passed between the stages of the one data flow.

decode -> DecodedPhoto -> quality -> QualityReport -> model -> PhotoScores
-> aggregate -> ItemScores -> policy (serving) -> decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

ImageFormat = Literal["jpeg", "png", "webp"]


@dataclass(frozen=True, eq=False)
class DecodedPhoto:
    """An upright, metadata-free RGB photo plus facts about the upload it came from."""

    rgb: np.ndarray  # HxWx3 uint8 RGB, EXIF orientation applied
    original_width: int  # upright pixel size of the upload before any DCT downscale
    original_height: int
    format: ImageFormat
    sha256: str  # of the upload bytes, as received
    byte_size: int
    # The EXIF (or XMP) orientation the decode applied; 1: the stored pixels were upright
    # (``vision.jpegclean`` keeps the upload's own JPEG data only then).
    orientation: int = 1

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def scale(self) -> float:
        """Decoded width / original width (< 1 when downscaled while decoding)."""
        return self.width / self.original_width


@dataclass(frozen=True)
class QualityCheck:
    """One gate check: the measurement, the bound it was compared with, and advice."""

    name: str  # blur | underexposed | overexposed | glare | resolution | coverage | cut_off
    passed: bool
    value: float
    threshold: float
    direction: Literal["min", "max"]  # value must be >= threshold (min) or <= (max)
    message: str  # a sentence a shopper can act on; empty when passed


@dataclass(frozen=True)
class QualityReport:
    profile: str
    checks: tuple[QualityCheck, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[QualityCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict[str, object]:
        return {
            "profile": self.profile,
            "passed": self.passed,
            "checks": [
                {
                    "name": c.name,
                    "passed": c.passed,
                    "value": round(float(c.value), 4),
                    "threshold": c.threshold,
                    "direction": c.direction,
                    "message": c.message,
                }
                for c in self.checks
            ],
        }


@dataclass(frozen=True, eq=False)
class PhotoScores:
    """Model outputs for one photo (rows of the contract's output tensors)."""

    grade_probs: np.ndarray  # [G] calibrated
    damage_probs: np.ndarray  # [D]
    embedding: np.ndarray  # [E], L2-normalised
    damage_cam: np.ndarray  # [D,h,w]
    # How far the photo lies from the training data (the model's ``unfamiliarity``
    # output) and whether it is within the card's threshold. None for both: the model
    # has no such score, so nobody can tell, and decisions abstain.
    unfamiliarity: float | None = None
    familiar: bool | None = None


@dataclass(frozen=True, eq=False)
class ItemScores:
    """Scores for one item aggregated over its 1-6 photos."""

    grade_labels: tuple[str, ...]
    damage_labels: tuple[str, ...]
    grade_probs: np.ndarray  # [G]
    damage_probs: np.ndarray  # [D]
    embedding: np.ndarray  # [E], L2-normalised mean
    per_photo: tuple[PhotoScores, ...] = field(default=())

    @property
    def familiar(self) -> bool | None:
        """False if any photo is unfamiliar, None if any cannot be told, else True."""
        flags = [p.familiar for p in self.per_photo]
        if not flags:
            return None
        if any(f is False for f in flags):
            return False
        return None if any(f is None for f in flags) else True

    @property
    def grade_index(self) -> int:
        return int(np.argmax(self.grade_probs))

    @property
    def grade(self) -> str:
        return self.grade_labels[self.grade_index]

    @property
    def confidence(self) -> float:
        return float(np.max(self.grade_probs))

    @property
    def expected_grade(self) -> float:
        """Mean grade index under the distribution (0 = best)."""
        return float(np.dot(self.grade_probs, np.arange(len(self.grade_probs))))

    def grade_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in zip(self.grade_labels, self.grade_probs, strict=True)}

    def damage_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in zip(self.damage_labels, self.damage_probs, strict=True)}
