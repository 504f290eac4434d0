"""What leaves the service: one pydantic model per resource, read from the stored rows.

Each model validates straight from the SQLAlchemy row (``from_attributes``): a field
whose name differs from the column names it (``validation_alias``), a value that is
derived (a photo's argmax grade, the label-ordered score dicts, links) is a computed
field, and internal columns are simply not declared. The same objects are the service's
return values and the API's ``response_model``, so no module copies fields one by one.

Links (``/v1/photos/...``) are part of a resource's representation, so they are built
here from ids; the HTTP layer adds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from typing import Any, Literal, Self

from pydantic import AliasPath, BaseModel, ConfigDict, Field, computed_field, model_validator

from serving.storage.label_order import stored_label_order

API_PREFIX = "/v1"
SHOWN_DAMAGE = 0.5  # a decision links the overlay of each damage label at least this likely


def photo_url(photo_id: str) -> str:
    return f"{API_PREFIX}/photos/{photo_id}"


def heatmap_link(photo_id: str, label: str) -> HeatmapLink:
    return HeatmapLink(
        photo_id=photo_id, label=label, url=f"{photo_url(photo_id)}/heatmap?label={label}"
    )


class OutputModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


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


def _ordered(probs: Mapping[str, float], order: tuple[str, ...] | None) -> dict[str, float]:
    """In the model's label order (stored with the scores; JSONB does not keep key order)."""
    return {k: probs[k] for k in order} if order is not None else dict(probs)


class ViewOut(BaseModel):
    """A view the category asks the shopper to photograph (guided capture)."""

    name: str = Field(description="Send it in the upload's `views` field for its photo.")
    prompt: str = Field(description="The sentence shown to the shopper.")
    outline: str = Field(description="The drawing to show: phone_front, box, generic, ...")


class PhotoOut(OutputModel):
    photo_id: str = Field(validation_alias="id")
    index: int = Field(validation_alias="position")
    view: str | None = Field(default=None, description="The view it shows (null: not said).")
    quality: QualityOut
    # grade_probs, damage_probs, embedding, damage_cam and their label orders: read, not sent
    scores: dict[str, Any] = Field(exclude=True, repr=False)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str:
        return photo_url(self.photo_id)

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def grade_probs(self) -> dict[str, float]:
        order = stored_label_order(self.scores, kind="grade")
        return _ordered(self.scores.get("grade_probs") or {}, order)

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def damage_probs(self) -> dict[str, float]:
        return _ordered(self.scores.get("damage_probs") or {}, stored_label_order(self.scores))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def grade(self) -> str | None:
        """This photo's own argmax grade."""
        probs = self.grade_probs
        return max(probs, key=lambda k: probs[k]) if probs else None

    @computed_field(  # type: ignore[prop-decorator]
        description="How far the photo lies from the model's training data (null: the "
        "model has no such score)."
    )
    @property
    def unfamiliarity(self) -> float | None:
        value = self.scores.get("unfamiliarity")
        return None if value is None else float(value)

    @computed_field(  # type: ignore[prop-decorator]
        description="False: the model has never seen photos like this one, so its grade "
        "is not used; null: the model cannot tell."
    )
    @property
    def familiar(self) -> bool | None:
        value = self.scores.get("familiar")
        return None if value is None else bool(value)

    @property
    def heatmap_labels(self) -> tuple[str, ...]:
        """The labels ``heatmap_png`` accepts: 'grade' plus every damage label."""
        return ("grade", *self.damage_probs) if self.scores.get("damage_cam") else ()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def heatmaps(self) -> list[HeatmapLink]:
        return [heatmap_link(self.photo_id, label) for label in self.heatmap_labels]

    def shown_heatmaps(self) -> list[HeatmapLink]:
        """Overlays worth showing with a decision: the overall one plus detected damage."""
        return [
            heatmap_link(self.photo_id, label)
            for label in self.heatmap_labels
            if label == "grade" or self.damage_probs.get(label, 0.0) >= SHOWN_DAMAGE
        ]


class DecisionOut(OutputModel):
    decision_id: str = Field(validation_alias="id")
    sequence: int
    outcome: Literal["approved", "retake", "needs_review", "rejected"]
    message: str = Field(
        validation_alias="shopper_message", description="One plain sentence for the shopper."
    )
    flags: list[FlagOut]
    grade_label: str | None = Field(validation_alias="grade", exclude=True)
    confidence: float | None = Field(exclude=True)
    grade_probs: dict[str, float] = Field(exclude=True)
    damage_probs: dict[str, float]
    heatmaps: list[HeatmapLink] = Field(
        default_factory=list, description="Overlays of the photos this decision used."
    )
    model_version: str
    policy_version: str
    created_at: datetime
    photo_ids: list[str]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def grade(self) -> GradeOut | None:
        if self.grade_label is None:
            return None
        return GradeOut(label=self.grade_label, confidence=self.confidence, probs=self.grade_probs)

    @model_validator(mode="after")
    def _default_heatmaps(self) -> Self:
        if not self.heatmaps:
            self.link_photos({})
        return self

    def link_photos(self, photos: Mapping[str, PhotoOut]) -> None:
        """The overlays of the photos it used: for a photo at hand the 'grade' overlay and
        one per damage label detected in it, for an earlier upload's photo its overall one."""
        self.heatmaps = [
            link
            for pid in self.photo_ids
            for link in (
                photos[pid].shown_heatmaps() if pid in photos else [heatmap_link(pid, "grade")]
            )
        ]


def _link(decisions: list[DecisionOut], photos: list[PhotoOut]) -> None:
    by_id = {p.photo_id: p for p in photos}
    for decision in decisions:
        decision.link_photos(by_id)


class TimelineOut(BaseModel):
    """One status change of a return, as the shopper may see it."""

    at: datetime
    status: str
    sentence: str
    by: str = Field(description="shopper | reviewer | dock | system")


class StaffTimelineOut(TimelineOut):
    """The same change for staff: who exactly, why, and what it carried."""

    previous: str | None
    actor: str
    why: str
    details: dict[str, Any]


class ResolutionOut(BaseModel):
    method: str = Field(description="refund | store_credit | exchange")
    timing: str = Field(description="instant | on_receipt | keep_it")
    amount: float
    status: str = Field(description="planned | issued | cancelled | revoked")
    offer: list[str] = Field(description="The methods the shopper may still choose.")
    exchange_sku: str | None = None
    message: str


class ReturnOut(OutputModel):
    """Built from a ``Return`` row; its item, decisions and photos are its relationships."""

    return_id: str = Field(validation_alias="id")
    order_id: str
    sku: str
    item_name: str = Field(
        default="",
        validation_alias=AliasPath("item", "name"),
        description="The catalog name of the returned item ('' if it is gone).",
    )
    category: str = Field(default="", validation_alias=AliasPath("item", "category"))
    reason: str
    note: str | None
    status: str = Field(description="The lifecycle status (serving.services.lifecycle).")
    created_at: datetime
    decisions: list[DecisionOut] = Field(description="Oldest first; the last one is current.")
    photos: list[PhotoOut]
    status_message: str = Field(
        default="", description="The sentence the shopper sees for the current status."
    )
    timeline: list[TimelineOut] = Field(
        default_factory=list, description="Status changes, oldest first."
    )
    resolution: ResolutionOut | None = Field(
        default=None, description="How the return is settled, once it is accepted."
    )
    required_views: list[ViewOut] = Field(
        default_factory=list,
        description="The views the category asks for, in order (empty: any photos).",
    )

    @computed_field(description="The current (latest) decision.")  # type: ignore[prop-decorator]
    @property
    def decision(self) -> DecisionOut | None:
        return self.decisions[-1] if self.decisions else None

    @model_validator(mode="after")
    def _link_heatmaps(self) -> Self:
        _link(self.decisions, self.photos)
        return self


class UploadOut(OutputModel):
    return_id: str
    photos: list[PhotoOut] = Field(description="The photos of this upload.")
    decision: DecisionOut
    replayed: bool = Field(
        default=False,
        description="True when this is the stored answer to an earlier upload with the "
        "same Idempotency-Key (a retry), not a new decision.",
    )

    @model_validator(mode="after")
    def _link_heatmaps(self) -> Self:
        _link([self.decision], self.photos)
        return self


class CreatedReturnOut(BaseModel):
    return_id: str
    token: str = Field(description="Shopper token for this one return; shown only once.")
    status: str = "awaiting_photos"
    required_views: list[ViewOut] = Field(
        default_factory=list,
        description="The views the category asks for, in order (empty: any photos).",
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def upload_url(self) -> str:
        return f"{self.return_url}/photos"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def return_url(self) -> str:
        return f"{API_PREFIX}/returns/{self.return_id}"


class OrderItemOut(OutputModel):
    """Built from an ``OrderLine`` row and its catalog item."""

    sku: str
    name: str = Field(validation_alias=AliasPath("item", "name"))
    category: str = Field(validation_alias=AliasPath("item", "category"))
    price: float = Field(description="The price paid on this order.")
    quantity: int


class OrderLookupOut(OutputModel):
    """Built from an ``Order`` row and its lines."""

    order_id: str = Field(validation_alias="id")
    delivered_at: datetime | None = Field(description="None: not delivered yet.")
    items: list[OrderItemOut] = Field(validation_alias="lines", description="By SKU.")
