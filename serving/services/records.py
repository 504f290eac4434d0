"""Resources whose representation IS their row (inspections, reviews, audit entries).

``InspectionOut`` and ``ReviewOut`` take every column of their table except the ones
named internal here, with the column's own Python type (``model_from_table``). Only
what differs from a plain column is declared by hand: the renamed id, flags typed as
``FlagOut``, links and the replay marker. So a new inspection column is one edit in
``storage/tables.py`` (plus its migration) and it is in the service's answer, the API
response and the OpenAPI document; a column that must stay private goes into
``INTERNAL_INSPECTION_COLUMNS`` instead. A name listed there that is no column fails at
import, so the list cannot rot.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, computed_field, create_model
from sqlalchemy import inspect as sa_inspect

from serving.services.outputs import API_PREFIX, FlagOut, OutputModel, photo_url
from serving.storage.tables import AuditLog, Base, Inspection, Review

M = TypeVar("M", bound=BaseModel)

INTERNAL_INSPECTION_COLUMNS = frozenset(
    {
        "idempotency_key",  # the station's retry key: a credential-like secret of the station
        "request_fingerprint",
        "grading_id",
        "shopper_decision_id",
        "confidence",
        "review_status",
    }
)
INTERNAL_REVIEW_COLUMNS = frozenset({"return_id", "inspection_id", "model_version", "photo_ids"})


def model_from_table(
    name: str, table: type[Base], *, base: type[M], internal: frozenset[str], doc: str
) -> type[M]:
    """``base`` plus one field per column of ``table`` that ``base`` does not declare
    (by name or as a ``validation_alias``) and that is not ``internal``."""
    hints = get_type_hints(table)
    columns = [c.key for c in sa_inspect(table).columns]
    unknown = internal - set(columns)
    if unknown:
        raise TypeError(f"{name}: {sorted(unknown)} are not columns of {table.__tablename__}")
    declared = set(base.model_fields) | {
        f.validation_alias
        for f in base.model_fields.values()
        if isinstance(f.validation_alias, str)
    }
    fields: dict[str, Any] = {
        key: (get_args(hints[key])[0], ...)
        for key in columns
        if key not in internal and key not in declared
    }
    return create_model(name, __base__=base, __module__=__name__, __doc__=doc, **fields)


class InspectionFields(OutputModel):
    """The inspection fields that are not a plain column (see ``model_from_table``)."""

    inspection_id: str = Field(validation_alias="id")
    flags: list[FlagOut]
    replayed: bool = Field(
        default=False, description="True when answered from the stored idempotency key."
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def photo_urls(self) -> list[str]:
        photo_ids: list[str] = getattr(self, "photo_ids", [])
        return [photo_url(p) for p in photo_ids]


class ReviewFields(OutputModel):
    review_id: str = Field(validation_alias="id")


if TYPE_CHECKING:  # the column fields are generated: type checkers see them as Any

    class InspectionOut(InspectionFields):
        def __getattr__(self, name: str) -> Any: ...

    class ReviewOut(ReviewFields):
        def __getattr__(self, name: str) -> Any: ...

    class AuditEntryOut(OutputModel):
        def __getattr__(self, name: str) -> Any: ...

else:
    InspectionOut = model_from_table(
        "InspectionOut",
        Inspection,
        base=InspectionFields,
        internal=INTERNAL_INSPECTION_COLUMNS,
        doc="A dock inspection: grade, tier, channel, recovery and flags.",
    )
    ReviewOut = model_from_table(
        "ReviewOut",
        Review,
        base=ReviewFields,
        internal=INTERNAL_REVIEW_COLUMNS,
        doc="A reviewer's verdict (with a grade or damage labels: a training label).",
    )
    AuditEntryOut = model_from_table(
        "AuditEntryOut",
        AuditLog,
        base=OutputModel,
        internal=frozenset(),
        doc="One append-only audit log entry.",
    )


class QueueItemOut(BaseModel):
    """One row of the review queue (a projection of a return or an inspection)."""

    subject_type: str
    subject_id: str
    created_at: datetime
    value: float = Field(description="The price at stake.")
    grade: str | None
    flags: list[str] = Field(description="Flag codes (notes left out).")
    outcome: str | None = None  # returns: the latest decision's outcome
    channel: str | None = None  # inspections: the chosen channel
    sku: str | None = None
    category: str | None = None
    photo_ids: list[str] = []
    confidence: float | None = Field(default=None, description="The model's top grade probability.")
    teach_score: float | None = Field(
        default=None, description="Label value (sort=teach only; serving/services/review_order.py)."
    )
    why: Literal["value", "random"] | None = Field(
        default=None,
        description="sort=teach only: placed by label value, or by chance (the random slice, "
        "the unbiased sample for accuracy estimates).",
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def detail_url(self) -> str:
        return f"{API_PREFIX}/review/items/{self.subject_type}/{self.subject_id}"


class ApiKeyInfoOut(OutputModel):
    """A staff API key as listed: never the key itself, only its first characters."""

    name: str
    role: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="When the key last authenticated a request, to the minute (null: never)."
    )
    revoked_at: datetime | None = Field(description="Set once revoked; the key no longer works.")


class ModelInfoOut(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model_version: str
    model_sha256: str
    dock_model_version: str
    policy_version: str
    policy_name: str
    grade_labels: list[str]
    damage_labels: list[str]
    unfamiliarity: bool = Field(
        description="Whether the model scores how unfamiliar a photo is. False (an older "
        "model): the service cannot tell and sends every photo to a person."
    )
    unfamiliarity_note: str = Field(description="The same, in one sentence for operators.")
    card: dict[str, Any] = Field(description="The full model card from the ONNX file.")
