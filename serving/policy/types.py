"""Frozen inputs and outputs of the policy engine.

The engine is a pure function, so everything it reads arrives here: the order, the
customer's history, the photo-quality verdicts, the model's scores (as plain mappings,
never numpy arrays) and the clock (``now`` is a field, not a call). The service builds
these values; ``from_report`` / ``from_item_scores`` accept the ``vision`` types by shape
so this module imports neither numpy nor ``vision.types``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, get_args

from vision.errors import ReturnLensError

ReasonCode = Literal[
    "changed_mind",
    "defective",
    "damaged_in_transit",
    "wrong_item",
    "not_as_described",
    "does_not_fit",
]
REASON_CODES: tuple[str, ...] = get_args(ReasonCode)

Outcome = Literal["approved", "retake", "needs_review", "rejected"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)

# What a flag does to the outcome. "note" informs a reviewer and changes nothing.
Effect = Literal["reject", "retake", "review", "note"]

FLAG_CODES: tuple[str, ...] = (
    "outside_return_window",
    "non_returnable_category",
    "non_returnable_condition",
    "photo_quality",
    "wrong_item",
    "reused_photo",
    "reason_condition_mismatch",
    "high_value",
    "repeat_returner",
    "low_confidence",
    "grade_discrepancy",
    "unfamiliar_photo",
    "model_cannot_tell",
    "no_reference_photo",
    "missing_views",
    "catalog_photo",
)


class PolicyInputError(ReturnLensError):
    """The caller handed the engine inconsistent facts (a bug upstream, not bad config)."""

    code = "invalid_policy_input"


def _finite(name: str, value: float, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PolicyInputError(f"{name} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise PolicyInputError(f"{name} must lie in [{low}, {high}], got {value!r}")
    return float(value)


def _prob(name: str, value: float) -> float:
    """A probability; float32 round-off just outside [0, 1] is clamped, not refused."""
    return min(1.0, max(0.0, _finite(name, value, -1e-6, 1.0 + 1e-6)))


def _aware(name: str, value: datetime) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise PolicyInputError(f"{name} must be a timezone-aware datetime, got {value!r}")


class _CheckLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def passed(self) -> bool: ...

    @property
    def message(self) -> str: ...


class _ReportLike(Protocol):
    @property
    def checks(self) -> Sequence[_CheckLike]: ...


class _PhotoScoresLike(Protocol):
    @property
    def unfamiliarity(self) -> float | None: ...


class _ItemScoresLike(Protocol):
    @property
    def grade_labels(self) -> Sequence[str]: ...

    @property
    def per_photo(self) -> Sequence[_PhotoScoresLike]: ...

    @property
    def familiar(self) -> bool | None: ...

    def grade_dict(self) -> dict[str, float]: ...

    def damage_dict(self) -> dict[str, float]: ...


@dataclass(frozen=True)
class QualityIssue:
    """One failed quality check: its name (blur, glare, ...) and the shopper's advice."""

    check: str
    message: str


@dataclass(frozen=True)
class PhotoQuality:
    """The quality gate's verdict on one uploaded photo, and the view it shows (guided
    capture, ``serving.policy.views``; None: the shopper did not say)."""

    passed: bool
    issues: tuple[QualityIssue, ...] = ()
    photo_id: str | None = None
    view: str | None = None

    @classmethod
    def from_report(
        cls, report: _ReportLike, photo_id: str | None = None, view: str | None = None
    ) -> PhotoQuality:
        """Build from a ``vision.types.QualityReport`` (or anything shaped like one)."""
        failed = tuple(QualityIssue(c.name, c.message) for c in report.checks if not c.passed)
        return cls(passed=not failed, issues=failed, photo_id=photo_id, view=view)


@dataclass(frozen=True)
class Scores:
    """The model's aggregated item scores as plain floats.

    ``grade_labels`` is ordinal, best first (index 0 = best); it comes from the model
    card, never from code. Ties in the argmax go to the better grade, as numpy does.

    ``familiar`` says whether the photos lie within the model's training world (vision's
    ``ItemScores.familiar``): False when any photo is unfamiliar, None when the model has
    no unfamiliarity score (an older model: nobody can tell), True otherwise. Both False
    and None make the engine abstain. ``from_item_scores`` always carries the model's
    answer; the True default only serves scores written by hand (tests, what-if runs).
    ``unfamiliarity`` holds each scored photo's score, for the flag's evidence.
    """

    grade_labels: tuple[str, ...]
    grade_probs: Mapping[str, float]
    damage_probs: Mapping[str, float]
    familiar: bool | None = True
    unfamiliarity: tuple[float | None, ...] = ()

    def __post_init__(self) -> None:
        labels = tuple(self.grade_labels)
        if not labels or len(set(labels)) != len(labels):
            raise PolicyInputError("grade_labels must be a non-empty list of distinct names")
        if set(self.grade_probs) != set(labels):
            raise PolicyInputError(
                f"grade_probs names {sorted(self.grade_probs)} but the model's grades are "
                f"{list(labels)}"
            )
        grades = {k: _prob(f"grade_probs[{k}]", self.grade_probs[k]) for k in labels}
        if abs(sum(grades.values()) - 1.0) > 0.01:
            raise PolicyInputError(f"grade_probs must sum to 1, got {sum(grades.values()):.4f}")
        damage = {str(k): _prob(f"damage_probs[{k}]", v) for k, v in self.damage_probs.items()}
        object.__setattr__(self, "grade_labels", labels)
        object.__setattr__(self, "grade_probs", grades)
        object.__setattr__(self, "damage_probs", damage)
        if self.familiar is not None:
            object.__setattr__(self, "familiar", bool(self.familiar))
        object.__setattr__(
            self,
            "unfamiliarity",
            tuple(None if u is None else _finite("unfamiliarity", u) for u in self.unfamiliarity),
        )

    @classmethod
    def from_item_scores(cls, item: _ItemScoresLike) -> Scores:
        """Build from a ``vision.types.ItemScores`` (or anything shaped like one)."""
        return cls(
            tuple(item.grade_labels),
            item.grade_dict(),
            item.damage_dict(),
            familiar=item.familiar,
            unfamiliarity=tuple(
                None if p.unfamiliarity is None else float(p.unfamiliarity) for p in item.per_photo
            ),
        )

    @property
    def damage_labels(self) -> tuple[str, ...]:
        return tuple(self.damage_probs)

    @property
    def grade_index(self) -> int:
        probs = [self.grade_probs[g] for g in self.grade_labels]
        return probs.index(max(probs))

    @property
    def grade(self) -> str:
        return self.grade_labels[self.grade_index]

    @property
    def confidence(self) -> float:
        return self.grade_probs[self.grade]

    def index(self, grade: str) -> int:
        return self.grade_labels.index(grade)

    def mass(self, grades: Iterable[str]) -> float:
        """Probability that the true grade is one of ``grades``."""
        return sum(self.grade_probs[g] for g in set(grades))


@dataclass(frozen=True)
class CustomerHistory:
    """The customer's earlier returns (not counting this one)."""

    return_times: tuple[datetime, ...] = ()
    rejected_returns: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "return_times", tuple(self.return_times))
        for i, t in enumerate(self.return_times):
            _aware(f"history.return_times[{i}]", t)
        if isinstance(self.rejected_returns, bool) or self.rejected_returns < 0:
            raise PolicyInputError("history.rejected_returns must be a count >= 0")


@dataclass(frozen=True)
class ReusedPhoto:
    """The nearest perceptual-hash match among photos of OTHER returns."""

    distance: int  # Hamming distance between 64-bit hashes
    other_return_id: str
    other_photo_id: str | None = None
    photo_id: str | None = None  # the new upload's photo (None: not said)


@dataclass(frozen=True)
class CopyMatch:
    """The best verified copy match of a new photo (``vision.copydetect``): ``score`` is
    the share (0..1) of the overlap that agrees once the new photo ``photo_id`` is aligned
    on ``other_photo_id``, a photo of another return (``other_return_id``) or a catalog
    reference photo (``sku``; its id is the stored photo's digest: reference photos have
    no photo row)."""

    score: float
    photo_id: str
    other_photo_id: str
    other_return_id: str | None = None
    sku: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "score", _finite("copy match score", self.score, 0.0, 1.0))


@dataclass(frozen=True)
class ReturnContext:
    """Everything the shopper decision reads. ``now`` is passed in: the engine has no clock.

    ``price`` is the amount paid for the returned item (the refund at stake).
    ``similarity`` is the cosine similarity between the photos' embedding and the SKU's
    catalog reference embedding, or None when it was not computed.
    ``has_reference`` says whether the SKU has a catalog reference photo: False fires
    ``no_reference_photo`` (the wrong-item check cannot run, and that is never silent);
    None means the caller did not look (hand-built contexts); the service always says.
    ``scores`` may be None only when no photo passed the quality gate.
    """

    category: str
    sku: str
    price: float
    reason: str
    delivered_at: datetime
    now: datetime
    photos: tuple[PhotoQuality, ...]
    scores: Scores | None = None
    history: CustomerHistory = field(default_factory=CustomerHistory)
    similarity: float | None = None
    reused_photo: ReusedPhoto | None = None
    previous_retakes: int = 0
    has_reference: bool | None = None
    # Copy detection: the best verified match among other returns' photos, and among
    # the catalog's reference photos (any SKU's); None: no candidate verified.
    copied_photo: CopyMatch | None = None
    catalog_copy: CopyMatch | None = None

    def __post_init__(self) -> None:
        _reference_facts(self.has_reference, self.similarity)
        if self.reason not in REASON_CODES:
            raise PolicyInputError(
                f"unknown reason code {self.reason!r}; expected one of {', '.join(REASON_CODES)}"
            )
        _aware("delivered_at", self.delivered_at)
        _aware("now", self.now)
        object.__setattr__(self, "price", _finite("price", self.price, 0.0))
        object.__setattr__(self, "photos", tuple(self.photos))
        if self.similarity is not None:
            object.__setattr__(
                self, "similarity", _finite("similarity", self.similarity, -1.0001, 1.0001)
            )
        if isinstance(self.previous_retakes, bool) or self.previous_retakes < 0:
            raise PolicyInputError("previous_retakes must be a count >= 0")


def _reference_facts(has_reference: bool | None, similarity: float | None) -> None:
    if has_reference is False and similarity is not None:
        raise PolicyInputError("a similarity was given, but the SKU has no reference photo")


@dataclass(frozen=True)
class DockContext:
    """What the dock disposition reads: the dock camera's scores and the shopper's grade.

    ``sku``, ``similarity`` and ``has_reference`` are the wrong-item facts, as in
    ``ReturnContext``: the dock checks the item against the SKU's catalog reference
    before it routes anything. ``has_reference`` None: the caller has no catalog (a
    standalone station), so no identity check is made.
    """

    category: str
    price: float
    scores: Scores
    shopper_grade: str | None = None
    quality_passed: bool = True
    sku: str | None = None
    similarity: float | None = None
    has_reference: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "price", _finite("price", self.price, 0.0))
        _reference_facts(self.has_reference, self.similarity)
        if self.similarity is not None:
            object.__setattr__(
                self, "similarity", _finite("similarity", self.similarity, -1.0001, 1.0001)
            )


@dataclass(frozen=True)
class Flag:
    """A machine-readable finding: stable ``code``, a sentence for staff, the numbers."""

    code: str
    message: str
    effect: Effect
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "effect": self.effect,
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True)
class ShopperDecision:
    outcome: Outcome
    flags: tuple[Flag, ...]
    shopper_message: str
    grade: str | None  # argmax grade name; None when no usable photo was scored
    confidence: float | None
    policy_version: str
    category_policy: str  # the policy category that applied ("default" for unknown ones)

    @property
    def flag_codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.flags)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "flags": [f.to_dict() for f in self.flags],
            "shopper_message": self.shopper_message,
            "grade": self.grade,
            "confidence": self.confidence,
            "policy_version": self.policy_version,
            "category_policy": self.category_policy,
        }


@dataclass(frozen=True)
class ChannelOption:
    """One row of the recovery table: price * (1 - markdown) - cost."""

    channel: str
    eligible: bool  # the dock grade may go to this channel
    markdown: float  # expected markdown fraction used in the formula
    cost: float
    expected_recovery: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "eligible": self.eligible,
            "markdown": round(self.markdown, 6),
            "cost": self.cost,
            "expected_recovery": round(self.expected_recovery, 2),
        }


@dataclass(frozen=True)
class DockDisposition:
    grade: str
    confidence: float
    tier: str
    markdown: float  # the tier's markdown for the dock grade
    channel: str  # the best channel for the grade (not to be used when ``held``)
    expected_recovery: float
    alternatives: tuple[ChannelOption, ...]  # every channel, best first
    flags: tuple[Flag, ...]
    needs_review: bool
    policy_version: str
    category_policy: str
    # True: a flag questions what the item is or whether the model can grade it (wrong
    # item, unfamiliar photo, cannot tell, no reference photo), so the item must not be
    # routed to ``channel`` until a person looks; the station shows "review" instead.
    held: bool = False

    @property
    def flag_codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.flags)

    def to_dict(self) -> dict[str, Any]:
        return {
            "grade": self.grade,
            "confidence": self.confidence,
            "tier": self.tier,
            "markdown": self.markdown,
            "channel": self.channel,
            "expected_recovery": round(self.expected_recovery, 2),
            "alternatives": [a.to_dict() for a in self.alternatives],
            "flags": [f.to_dict() for f in self.flags],
            "needs_review": self.needs_review,
            "held": self.held,
            "policy_version": self.policy_version,
            "category_policy": self.category_policy,
        }
