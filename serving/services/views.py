"""Frozen values crossing the service boundary (requests in, views out).

The HTTP layer turns these into JSON; nothing here knows about HTTP or SQLAlchemy.
Probabilities are plain ``dict[str, float]`` keyed by the model card's labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

SubjectType = Literal["return", "inspection"]
Verdict = Literal["approve", "reject", "correct"]
Role = Literal["dock", "reviewer", "admin"]
ROLES: tuple[str, ...] = ("dock", "reviewer", "admin")
VERDICTS: tuple[str, ...] = ("approve", "reject", "correct")
SUBJECT_TYPES: tuple[str, ...] = ("return", "inspection")


@dataclass(frozen=True)
class CreateReturnRequest:
    order_id: str
    sku: str
    reason: str
    note: str | None = None
    # When given, must match the order's customer email (strip + casefold); a mismatch is
    # answered exactly like an unknown order, so order ids cannot be probed.
    email: str | None = None


@dataclass(frozen=True)
class OrderItemView:
    sku: str
    name: str
    category: str
    price: float  # the price paid on this order
    quantity: int


@dataclass(frozen=True)
class OrderView:
    order_id: str
    delivered_at: datetime | None  # None: not delivered yet
    items: tuple[OrderItemView, ...]  # by SKU


@dataclass(frozen=True)
class CreatedReturn:
    return_id: str
    token: str  # plaintext, shown once; only its sha256 is stored


@dataclass(frozen=True)
class PhotoView:
    photo_id: str
    digest: str
    index: int
    quality: dict[str, Any]  # QualityReport.to_dict(): profile, passed, checks[]
    grade: str | None  # this photo's own argmax grade
    grade_probs: dict[str, float]
    damage_probs: dict[str, float]
    heatmap_labels: tuple[str, ...]  # labels heatmap_png accepts ("grade" + damage labels)


@dataclass(frozen=True)
class DecisionView:
    decision_id: str
    outcome: str  # approved | retake | needs_review | rejected
    flags: list[dict[str, Any]]  # {code, message, effect, evidence}
    grade: str | None
    confidence: float | None
    grade_probs: dict[str, float]
    damage_probs: dict[str, float]
    shopper_message: str
    model_version: str
    policy_version: str
    created_at: datetime
    photo_ids: tuple[str, ...]
    sequence: int = 1  # 1, 2, ... per return (retakes add decisions)


@dataclass(frozen=True)
class ReturnView:
    return_id: str
    order_id: str
    sku: str
    category: str
    reason: str
    note: str | None
    status: str  # awaiting_photos | approved | retake | needs_review | rejected | reviewed
    created_at: datetime
    decisions: tuple[DecisionView, ...]  # oldest first; the last one is current
    photos: tuple[PhotoView, ...]
    item_name: str = ""  # the catalog name of the SKU ("" if the item is gone)

    @property
    def latest_decision(self) -> DecisionView | None:
        return self.decisions[-1] if self.decisions else None


@dataclass(frozen=True)
class UploadResult:
    return_id: str
    photos: tuple[PhotoView, ...]  # the photos of THIS upload
    decision: DecisionView


@dataclass(frozen=True)
class InspectionRequest:
    return_id: str | None
    photos: list[bytes]
    idempotency_key: str
    station_id: str


@dataclass(frozen=True)
class InspectionView:
    inspection_id: str
    return_id: str | None  # the matched return; None when unmatched
    status: str  # matched | unmatched
    grade: str | None
    grade_probs: dict[str, float]
    damage_probs: dict[str, float]
    tier: str | None
    markdown: float | None
    channel: str | None
    expected_recovery: float | None
    alternatives: list[dict[str, Any]]
    flags: list[dict[str, Any]]
    needs_review: bool
    model_version: str
    policy_version: str
    created_at: datetime
    photo_ids: tuple[str, ...]
    replayed: bool = False  # True when answered from the stored idempotency key
    claimed_return_id: str | None = None  # what the label said (set even when unmatched)
    station_id: str = ""
    shopper_grade: str | None = None


@dataclass(frozen=True)
class ReviewRequest:
    subject_type: str  # return | inspection
    subject_id: str
    reviewer: str
    verdict: str  # approve | reject | correct
    grade: str | None = None
    damage: tuple[str, ...] | None = None
    note: str | None = None


@dataclass(frozen=True)
class ReviewView:
    review_id: str
    subject_type: str
    subject_id: str
    reviewer: str
    verdict: str
    grade: str | None
    damage: tuple[str, ...] | None
    note: str | None
    created_at: datetime


@dataclass(frozen=True)
class QueueItem:
    subject_type: str  # return | inspection
    subject_id: str
    created_at: datetime
    value: float  # price at stake
    grade: str | None
    flags: tuple[str, ...]  # flag codes
    outcome: str | None = None  # returns: latest decision outcome
    channel: str | None = None  # inspections: chosen channel
    sku: str | None = None
    category: str | None = None
    photo_ids: tuple[str, ...] = field(default=())
