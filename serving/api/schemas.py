"""Request and response models of the public API (they are what OpenAPI documents).

The service returns frozen dataclasses; the ``*_out`` functions turn them into these
models and add what only the HTTP layer knows: URLs of photos and heatmap overlays.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from serving.policy import REASON_CODES
from serving.services.views import (
    DecisionView,
    InspectionView,
    PhotoView,
    QueueItem,
    ReturnView,
    ReviewView,
)

ReasonCode = Literal[
    "changed_mind",
    "defective",
    "damaged_in_transit",
    "wrong_item",
    "not_as_described",
    "does_not_fit",
]
assert set(get_args(ReasonCode)) == set(REASON_CODES), "reason codes drifted from the policy"

V1 = "/v1"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# ---------------------------------------------------------------- requests
class CreateReturnIn(_In):
    order_id: str = Field(min_length=1, max_length=64, examples=["ORD-1001"])
    email: str = Field(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="The order's customer email; it must match the order "
        "(stops anyone from opening returns by guessing ids).",
    )
    sku: str = Field(min_length=1, max_length=64)
    reason: ReasonCode
    note: str | None = Field(default=None, max_length=2000)


class VerdictIn(_In):
    subject_type: Literal["return", "inspection"]
    subject_id: str = Field(min_length=1, max_length=64)
    verdict: Literal["approve", "reject", "correct"]
    grade: str | None = Field(
        default=None, max_length=64, description="Corrected grade (required for 'correct')."
    )
    damage: list[str] | None = Field(
        default=None, max_length=32, description="Corrected damage labels ([] = none)."
    )
    note: str | None = Field(default=None, max_length=2000)


class ApiKeyIn(_In):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    role: Literal["dock", "reviewer", "admin"]


class CatalogItemIn(_In):
    sku: str = Field(min_length=1, max_length=64)
    category: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    price: float = Field(ge=0, le=1_000_000)
    reference_photo_base64: str | None = Field(
        None, description="Optional reference photo (JPEG/PNG/WebP), base64-encoded."
    )


class OrderIn(_In):
    order_id: str = Field(min_length=1, max_length=64)
    customer_id: str = Field(min_length=1, max_length=64)
    customer_email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    sku: str = Field(min_length=1, max_length=64)
    price: float = Field(ge=0, le=1_000_000)
    delivered_at: datetime


# ---------------------------------------------------------------- responses
class QualityCheckOut(BaseModel):
    name: str
    passed: bool
    value: float | None = None
    threshold: float | None = None
    direction: str | None = None
    message: str = ""


class QualityOut(BaseModel):
    profile: str | None = None
    passed: bool
    checks: list[QualityCheckOut]


class FlagOut(BaseModel):
    code: str
    message: str
    effect: str | None = None
    evidence: dict[str, Any] = {}


class GradeOut(BaseModel):
    label: str
    confidence: float | None
    probs: dict[str, float]


class HeatmapLink(BaseModel):
    photo_id: str
    label: str
    url: str


class PhotoOut(BaseModel):
    photo_id: str
    index: int
    url: str
    quality: QualityOut
    grade: str | None
    grade_probs: dict[str, float]
    damage_probs: dict[str, float]
    heatmaps: list[HeatmapLink]


class DecisionOut(BaseModel):
    decision_id: str
    sequence: int
    outcome: Literal["approved", "retake", "needs_review", "rejected"]
    message: str = Field(description="One plain sentence for the shopper.")
    flags: list[FlagOut]
    grade: GradeOut | None
    damage_probs: dict[str, float]
    heatmaps: list[HeatmapLink]
    model_version: str
    policy_version: str
    created_at: datetime
    photo_ids: list[str]


class CreatedReturnOut(BaseModel):
    return_id: str
    token: str = Field(description="Shopper token for this one return; shown only once.")
    status: str
    upload_url: str
    return_url: str


class UploadOut(BaseModel):
    return_id: str
    photos: list[PhotoOut]
    decision: DecisionOut


class ReturnOut(BaseModel):
    return_id: str
    order_id: str
    sku: str
    item_name: str = Field(description="The catalog name of the returned item.")
    category: str
    reason: str
    note: str | None
    status: str
    created_at: datetime
    decision: DecisionOut | None = Field(description="The current (latest) decision.")
    decisions: list[DecisionOut]
    photos: list[PhotoOut]


class InspectionOut(BaseModel):
    inspection_id: str
    return_id: str | None
    claimed_return_id: str | None = None
    station_id: str = ""
    status: str
    grade: str | None
    grade_probs: dict[str, float]
    damage_probs: dict[str, float]
    shopper_grade: str | None = None
    tier: str | None
    markdown: float | None
    channel: str | None
    expected_recovery: float | None
    alternatives: list[dict[str, Any]]
    flags: list[FlagOut]
    needs_review: bool
    model_version: str
    policy_version: str
    created_at: datetime
    photo_ids: list[str]
    photo_urls: list[str]
    replayed: bool


class QueueItemOut(BaseModel):
    subject_type: str
    subject_id: str
    created_at: datetime
    value: float
    grade: str | None
    flags: list[str]
    outcome: str | None = None
    channel: str | None = None
    sku: str | None = None
    category: str | None = None
    photo_ids: list[str] = []
    detail_url: str


class ReviewOut(BaseModel):
    review_id: str
    subject_type: str
    subject_id: str
    reviewer: str
    verdict: str
    grade: str | None
    damage: list[str] | None
    note: str | None
    created_at: datetime


class ReviewItemOut(BaseModel):
    subject_type: Literal["return", "inspection"]
    subject_id: str
    return_detail: ReturnOut | None = None
    inspection_detail: InspectionOut | None = None
    audit: list[dict[str, Any]]


class UpsertOut(BaseModel):
    upserted: int


class ModelInfoOut(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model_version: str
    model_sha256: str
    policy_version: str
    grade_labels: list[str]
    damage_labels: list[str]
    card: dict[str, Any] = Field(description="The full model card from the ONNX file.")


class ApiKeyOut(BaseModel):
    name: str
    role: str
    key: str = Field(description="The key in plaintext; shown only once, stored hashed.")


# ---------------------------------------------------------------- converters
def photo_url(photo_id: str) -> str:
    return f"{V1}/photos/{photo_id}"


def heatmap_links(photo: PhotoView) -> list[HeatmapLink]:
    base = photo_url(photo.photo_id)
    return [
        HeatmapLink(photo_id=photo.photo_id, label=label, url=f"{base}/heatmap?label={label}")
        for label in photo.heatmap_labels
    ]


def photo_out(photo: PhotoView) -> PhotoOut:
    return PhotoOut(
        photo_id=photo.photo_id,
        index=photo.index,
        url=photo_url(photo.photo_id),
        quality=QualityOut.model_validate(photo.quality),
        grade=photo.grade,
        grade_probs=photo.grade_probs,
        damage_probs=photo.damage_probs,
        heatmaps=heatmap_links(photo),
    )


def shown_labels(photo: PhotoView, min_prob: float = 0.5) -> list[str]:
    """Overlays worth showing with a decision: the overall one plus detected damage."""
    return [
        label
        for label in photo.heatmap_labels
        if label == "grade" or photo.damage_probs.get(label, 0.0) >= min_prob
    ]


def decision_out(decision: DecisionView, photos: dict[str, PhotoView]) -> DecisionOut:
    """``photos`` by id lets the decision link the overlays of the photos it used: the
    'grade' overlay and one per damage label detected in that photo (every label's
    overlay stays listed under each photo)."""
    grade = None
    if decision.grade is not None:
        grade = GradeOut(
            label=decision.grade, confidence=decision.confidence, probs=decision.grade_probs
        )
    heatmaps: list[HeatmapLink] = []
    for pid in decision.photo_ids:
        if pid in photos:
            shown = shown_labels(photos[pid])
            heatmaps += [link for link in heatmap_links(photos[pid]) if link.label in shown]
        else:  # a photo of an earlier upload: its overall overlay
            heatmaps.append(
                HeatmapLink(
                    photo_id=pid, label="grade", url=f"{photo_url(pid)}/heatmap?label=grade"
                )
            )
    return DecisionOut(
        decision_id=decision.decision_id,
        sequence=decision.sequence,
        outcome=decision.outcome,  # type: ignore[arg-type]
        message=decision.shopper_message,
        flags=[FlagOut.model_validate(f) for f in decision.flags],
        grade=grade,
        damage_probs=decision.damage_probs,
        heatmaps=heatmaps,
        model_version=decision.model_version,
        policy_version=decision.policy_version,
        created_at=decision.created_at,
        photo_ids=list(decision.photo_ids),
    )


def return_out(view: ReturnView) -> ReturnOut:
    by_id = {p.photo_id: p for p in view.photos}
    decisions = [decision_out(d, by_id) for d in view.decisions]
    return ReturnOut(
        return_id=view.return_id,
        order_id=view.order_id,
        sku=view.sku,
        item_name=view.item_name,
        category=view.category,
        reason=view.reason,
        note=view.note,
        status=view.status,
        created_at=view.created_at,
        decision=decisions[-1] if decisions else None,
        decisions=decisions,
        photos=[photo_out(p) for p in view.photos],
    )


def inspection_out(view: InspectionView) -> InspectionOut:
    return InspectionOut(
        inspection_id=view.inspection_id,
        return_id=view.return_id,
        claimed_return_id=view.claimed_return_id,
        station_id=view.station_id,
        status=view.status,
        grade=view.grade,
        grade_probs=view.grade_probs,
        damage_probs=view.damage_probs,
        shopper_grade=view.shopper_grade,
        tier=view.tier,
        markdown=view.markdown,
        channel=view.channel,
        expected_recovery=view.expected_recovery,
        alternatives=list(view.alternatives),
        flags=[FlagOut.model_validate(f) for f in view.flags],
        needs_review=view.needs_review,
        model_version=view.model_version,
        policy_version=view.policy_version,
        created_at=view.created_at,
        photo_ids=list(view.photo_ids),
        photo_urls=[photo_url(p) for p in view.photo_ids],
        replayed=view.replayed,
    )


def queue_item_out(item: QueueItem) -> QueueItemOut:
    return QueueItemOut(
        subject_type=item.subject_type,
        subject_id=item.subject_id,
        created_at=item.created_at,
        value=item.value,
        grade=item.grade,
        flags=list(item.flags),
        outcome=item.outcome,
        channel=item.channel,
        sku=item.sku,
        category=item.category,
        photo_ids=list(item.photo_ids),
        detail_url=f"{V1}/review/items/{item.subject_type}/{item.subject_id}",
    )


def review_out(view: ReviewView) -> ReviewOut:
    return ReviewOut(
        review_id=view.review_id,
        subject_type=view.subject_type,
        subject_id=view.subject_id,
        reviewer=view.reviewer,
        verdict=view.verdict,
        grade=view.grade,
        damage=list(view.damage) if view.damage is not None else None,
        note=view.note,
        created_at=view.created_at,
    )
