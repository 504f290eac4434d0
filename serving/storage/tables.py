"""The relational schema (SQLAlchemy 2 declarative models).

The Alembic revisions under ``migrations/versions`` are the source of truth for what a
database contains; these models mirror them for queries. The few relationships are
``viewonly``: they let the service's response models read a return's item, decisions and
photos (and an order's lines) straight from the row, and never write anything
(``OutboxEvent.deliveries`` excepted: its deliveries are inserted with the event). Scores
and flags are JSON so every decision can be explained and replayed with the model and
policy versions stored next to them. ``audit_log`` is append-only: the repository has no
update/delete path and a trigger refuses UPDATE/DELETE (and TRUNCATE on PostgreSQL) at
the database level.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from serving.storage import lengths
from serving.storage.types import BigIntPK, JSONType, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(lengths.ID)  # prefixed random ids, e.g. "ret_3f9c..."
DIGEST = String(lengths.DIGEST)  # sha256 hex
# Every bounded string column takes its length from serving/storage/lengths.py, where
# the API's input fields take theirs: what the API accepts fits on every database.
SHOP_ID = String(lengths.SHOP_ID)
LABEL = String(lengths.LABEL)
MODEL_VERSION = String(lengths.MODEL_VERSION)
MONEY = Numeric(12, 2, asdecimal=False)


# The returns columns the staff search filters by equality, each with its own index.
SEARCH_FILTER_COLUMNS = (
    "status",
    "latest_outcome",
    "latest_grade",
    "reason",
    "category",
    "sku",
    "customer_id",
    "latest_channel",
)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[str] = mapped_column(SHOP_ID, primary_key=True)
    email: Mapped[str | None] = mapped_column(String(lengths.EMAIL))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CatalogItem(Base):
    __tablename__ = "catalog_items"
    sku: Mapped[str] = mapped_column(SHOP_ID, primary_key=True)
    category: Mapped[str] = mapped_column(SHOP_ID)
    name: Mapped[str] = mapped_column(String(lengths.ITEM_NAME))
    price: Mapped[float] = mapped_column(MONEY)
    reference_digest: Mapped[str | None] = mapped_column(DIGEST)  # PhotoStore digest
    # Embeddings are model-specific: the version says which model produced it.
    reference_embedding: Mapped[list[float] | None] = mapped_column(JSONType)
    reference_model_version: Mapped[str | None] = mapped_column(MODEL_VERSION)
    # Copy detection (vision/copydetect.py) of the reference photo, for the catalog-photo
    # check: the global vector (float16) and the local features. Model-independent.
    reference_copy_vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    reference_copy_features: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(SHOP_ID, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lines: Mapped[list[OrderLine]] = relationship(order_by="OrderLine.sku", viewonly=True)


class OrderLine(Base):
    __tablename__ = "order_lines"
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    sku: Mapped[str] = mapped_column(ForeignKey("catalog_items.sku"), primary_key=True)
    price: Mapped[float] = mapped_column(MONEY)  # paid price, may differ from list price
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    item: Mapped[CatalogItem] = relationship(viewonly=True)


class Return(Base):
    __tablename__ = "returns"
    __table_args__ = (
        ForeignKeyConstraint(
            ["order_id", "sku"],
            ["order_lines.order_id", "order_lines.sku"],
            name="fk_returns_order_line",
        ),
        # The staff search (serving.services.return_search): two indexes per filter, one
        # for each sort key ((created_at, id) and (price, id)), so an equality filter
        # walks its index in the page's order and stops after ``limit`` rows; the sort
        # keys alone serve the date and price ranges.
        Index("ix_returns_search_created", "created_at", "id"),
        Index("ix_returns_search_price", "price", "id"),
        *(
            Index(f"ix_returns_search_{column}", column, "created_at", "id")
            for column in SEARCH_FILTER_COLUMNS
        ),
        *(
            Index(f"ix_returns_search_{column}_price", column, "price", "id")
            for column in SEARCH_FILTER_COLUMNS
        ),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    order_id: Mapped[str] = mapped_column(SHOP_ID, index=True)
    sku: Mapped[str] = mapped_column(SHOP_ID)
    # status, customer_id and created_at lead the search indexes above (0011 dropped their
    # single-column indexes, which those cover).
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    reason: Mapped[str] = mapped_column(String(lengths.REASON))
    note: Mapped[str | None] = mapped_column(Text)
    # awaiting_photos | approved | retake | needs_review | rejected | reviewed
    status: Mapped[str] = mapped_column(String(20))
    shopper_token_hash: Mapped[str] = mapped_column(DIGEST)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Search facts, copies kept for the staff search's indexes (migration 0011), written
    # by ``serving.storage.search_facts.refresh`` in the transaction that changes their
    # source: the order line's paid price, the catalog category at creation, the latest
    # decision's outcome and grade, the latest inspection's channel. NULL: none yet.
    price: Mapped[float | None] = mapped_column(MONEY)
    category: Mapped[str | None] = mapped_column(SHOP_ID)
    latest_outcome: Mapped[str | None] = mapped_column(String(20))
    latest_grade: Mapped[str | None] = mapped_column(LABEL)
    latest_channel: Mapped[str | None] = mapped_column(LABEL)
    item: Mapped[CatalogItem | None] = relationship(
        primaryjoin="foreign(Return.sku) == CatalogItem.sku", viewonly=True
    )
    decisions: Mapped[list[Decision]] = relationship(order_by="Decision.sequence", viewonly=True)
    photos: Mapped[list[Photo]] = relationship(
        primaryjoin="and_(Photo.return_id == Return.id, Photo.role == 'shopper')",
        order_by="Photo.position",
        viewonly=True,
    )


class ReturnFlag(Base):
    """A flag code on a return's latest decision: a search fact like ``Return.latest_*``
    (one row per code, rewritten with them), so the flag filter is an index lookup
    rather than a scan of every decision's JSON."""

    __tablename__ = "return_flags"
    __table_args__ = (Index("ix_return_flags_code", "code", "return_id"),)
    return_id: Mapped[str] = mapped_column(ForeignKey("returns.id"), primary_key=True)
    code: Mapped[str] = mapped_column(LABEL, primary_key=True)


class Inspection(Base):
    __tablename__ = "inspections"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(lengths.IDEMPOTENCY_KEY), unique=True)
    request_fingerprint: Mapped[str] = mapped_column(DIGEST)  # photos (+ return id) hash
    station_id: Mapped[str] = mapped_column(String(lengths.STATION_ID))
    return_id: Mapped[str | None] = mapped_column(ForeignKey("returns.id"), index=True)
    # The return id as the label said it.
    claimed_return_id: Mapped[str | None] = mapped_column(String(lengths.CLAIMED_RETURN_ID))
    status: Mapped[str] = mapped_column(String(20))  # matched | unmatched
    grading_id: Mapped[str] = mapped_column(ForeignKey("gradings.id"))
    shopper_decision_id: Mapped[str | None] = mapped_column(ForeignKey("decisions.id"))
    shopper_grade: Mapped[str | None] = mapped_column(LABEL)
    grade: Mapped[str | None] = mapped_column(LABEL)
    confidence: Mapped[float | None] = mapped_column(Float)
    grade_probs: Mapped[dict[str, float]] = mapped_column(JSONType)
    damage_probs: Mapped[dict[str, float]] = mapped_column(JSONType)
    tier: Mapped[str | None] = mapped_column(LABEL)
    markdown: Mapped[float | None] = mapped_column(Float)
    channel: Mapped[str | None] = mapped_column(LABEL)
    expected_recovery: Mapped[float | None] = mapped_column(Float)
    alternatives: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    flags: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    # The facts checked before routing: cosine similarity of the dock photos to the SKU's
    # catalog reference (None: not checked, no reference or no matched return), and
    # whether the model knows such photos (None: the model cannot tell). A wrong item or
    # an unfamiliar photo leaves ``channel`` empty: held for review, not routed.
    similarity: Mapped[float | None] = mapped_column(Float)
    familiar: Mapped[bool | None] = mapped_column(Boolean)
    needs_review: Mapped[bool] = mapped_column(Boolean)
    review_status: Mapped[str] = mapped_column(String(20), index=True)  # none|pending|reviewed
    model_version: Mapped[str] = mapped_column(MODEL_VERSION)
    policy_version: Mapped[str] = mapped_column(MODEL_VERSION)
    photo_ids: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Photo(Base):
    __tablename__ = "photos"
    # (role, created_at): the reused-photo index reads only shopper photos added lately.
    __table_args__ = (
        UniqueConstraint("return_id", "upload_sha256"),
        Index("ix_photos_role_created_at", "role", "created_at"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    role: Mapped[str] = mapped_column(String(16), index=True)  # shopper | dock | reference
    return_id: Mapped[str | None] = mapped_column(ForeignKey("returns.id"), index=True)
    inspection_id: Mapped[str | None] = mapped_column(ForeignKey("inspections.id"), index=True)
    sku: Mapped[str | None] = mapped_column(ForeignKey("catalog_items.sku"))  # reference
    position: Mapped[int] = mapped_column(Integer)  # 0-based index within its subject
    digest: Mapped[str] = mapped_column(DIGEST, index=True)  # of the stored, clean bytes
    upload_sha256: Mapped[str] = mapped_column(DIGEST)  # of the bytes as received
    upload_format: Mapped[str] = mapped_column(String(8))
    media_type: Mapped[str] = mapped_column(LABEL)  # of the stored copy
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    original_width: Mapped[int] = mapped_column(Integer)
    original_height: Mapped[int] = mapped_column(Integer)
    phash: Mapped[str] = mapped_column(String(16))
    quality: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # grade_probs, damage_probs (label -> p), embedding, damage_cam [D][h][w]
    scores: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # The view a shopper photo shows (guided capture: a name from the category policy's
    # ``views``); None: not said, and every dock and reference photo.
    view: Mapped[str | None] = mapped_column(LABEL)
    # Copy detection (vision/copydetect.py) of a shopper photo, for the reused-photo
    # check: the global vector (float16, held in memory by serving/services/copy_index.py)
    # and the local features (read for the few candidates). None: dock photos and photos
    # stored before migration 0012.
    copy_vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    copy_features: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Grading(Base):
    """One model run over the photos of one request (shopper upload or dock inspection)."""

    __tablename__ = "gradings"
    __table_args__ = (Index("ix_gradings_subject", "subject_type", "subject_id"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(20))  # return | inspection
    subject_id: Mapped[str] = mapped_column(ID)
    profile: Mapped[str] = mapped_column(String(20))  # quality profile: shopper | dock
    model_version: Mapped[str] = mapped_column(MODEL_VERSION)
    grade: Mapped[str | None] = mapped_column(LABEL)  # None: no photo passed quality
    confidence: Mapped[float | None] = mapped_column(Float)
    grade_probs: Mapped[dict[str, float]] = mapped_column(JSONType)
    damage_probs: Mapped[dict[str, float]] = mapped_column(JSONType)
    embedding: Mapped[list[float] | None] = mapped_column(JSONType)
    photo_ids: Mapped[list[str]] = mapped_column(JSONType)
    usable_photo_ids: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Decision(Base):
    __tablename__ = "decisions"
    # The unique sequence also serialises two concurrent uploads to one return; the
    # unique (return, idempotency key) makes a shopper's retried upload find its decision.
    __table_args__ = (
        UniqueConstraint("return_id", "sequence"),
        Index("ix_decisions_idempotency", "return_id", "idempotency_key", unique=True),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    return_id: Mapped[str] = mapped_column(ForeignKey("returns.id"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per return
    grading_id: Mapped[str] = mapped_column(ForeignKey("gradings.id"))
    outcome: Mapped[str] = mapped_column(String(20), index=True)
    flags: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    grade: Mapped[str | None] = mapped_column(LABEL)
    confidence: Mapped[float | None] = mapped_column(Float)
    grade_probs: Mapped[dict[str, float]] = mapped_column(JSONType)
    damage_probs: Mapped[dict[str, float]] = mapped_column(JSONType)
    shopper_message: Mapped[str] = mapped_column(Text)
    model_version: Mapped[str] = mapped_column(MODEL_VERSION)
    policy_version: Mapped[str] = mapped_column(MODEL_VERSION)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType)  # policy facts, for replay
    photo_ids: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The upload's Idempotency-Key (None: sent without one) and the sha256 over its
    # photos' sha256s: a retry with the same key and photos is answered with this row.
    idempotency_key: Mapped[str | None] = mapped_column(String(lengths.IDEMPOTENCY_KEY))
    request_fingerprint: Mapped[str | None] = mapped_column(DIGEST)


class PolicyVersion(Base):
    """The full text of every policy version a decision or inspection was made with.

    ``text`` is the canonical JSON the version hashes (the resolved policy: every
    category merged, every default and model-card threshold filled in), so
    ``"pol-" + sha256(text)[:12] == version`` and a stored decision's policy can be rebuilt
    exactly (``serving.services.policies``). Written once per version, idempotently.
    """

    __tablename__ = "policy_versions"
    version: Mapped[str] = mapped_column(MODEL_VERSION, primary_key=True)
    name: Mapped[str] = mapped_column(String(lengths.ITEM_NAME))  # the YAML's ``name``
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ShadowPrediction(Base):
    """What a challenger model (shadow mode) made of a shopper decision's photos.

    Written off the request path after the champion's decision was stored
    (``serving.services.shadow``): the challenger's aggregated scores over the same stored
    photos and the outcome the same policy would have given with them. Never shown to a
    shopper; ``returnlens shadow report`` compares it with the decision and the reviews.
    """

    __tablename__ = "shadow_predictions"
    __table_args__ = (UniqueConstraint("decision_id", "model_version"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    decision_id: Mapped[str] = mapped_column(ForeignKey("decisions.id"), index=True)
    return_id: Mapped[str] = mapped_column(ForeignKey("returns.id"), index=True)
    model_version: Mapped[str] = mapped_column(MODEL_VERSION)  # the challenger's
    policy_version: Mapped[str] = mapped_column(MODEL_VERSION)  # fitted to its card
    grade: Mapped[str | None] = mapped_column(LABEL)  # None: no photo passed quality
    confidence: Mapped[float | None] = mapped_column(Float)
    grade_probs: Mapped[dict[str, float]] = mapped_column(JSONType)
    damage_probs: Mapped[dict[str, float]] = mapped_column(JSONType)
    familiar: Mapped[bool | None] = mapped_column(Boolean)  # None: the model cannot tell
    unfamiliarity: Mapped[list[float | None]] = mapped_column(JSONType)  # per usable photo
    outcome: Mapped[str] = mapped_column(String(20))  # what the policy would have decided
    flags: Mapped[list[str]] = mapped_column(JSONType)  # "code:effect"
    photo_ids: Mapped[list[str]] = mapped_column(JSONType)  # the decision's photos, graded
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Review(Base):
    """A reviewer's verdict; with a grade or damage labels it is a training label."""

    __tablename__ = "reviews"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(lengths.KIND))  # return | inspection
    subject_id: Mapped[str] = mapped_column(ID)
    return_id: Mapped[str | None] = mapped_column(ForeignKey("returns.id"), index=True)
    inspection_id: Mapped[str | None] = mapped_column(ForeignKey("inspections.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(lengths.KEY_NAME))
    verdict: Mapped[str] = mapped_column(String(lengths.KIND))  # approve | reject | correct
    grade: Mapped[str | None] = mapped_column(LABEL)
    damage: Mapped[list[str] | None] = mapped_column(JSONType)
    note: Mapped[str | None] = mapped_column(Text)
    model_version: Mapped[str | None] = mapped_column(MODEL_VERSION)  # of the graded subject
    photo_ids: Mapped[list[str]] = mapped_column(JSONType)  # the photos the label covers
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(lengths.KEY_NAME), unique=True)
    role: Mapped[str] = mapped_column(String(lengths.ROLE))  # dock | reviewer | admin
    key_hash: Mapped[str] = mapped_column(DIGEST, unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings, never the key
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the key last authenticated a request, to the minute (written at most once a
    # minute per key, so authentication stays a read).
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_subject", "subject_type", "subject_id"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(120))  # shopper:<return>, key:<name>, system
    action: Mapped[str] = mapped_column(String(60))
    subject_type: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)


class OutboxEvent(Base):
    """Something the shop's systems or the shopper should hear about (the outbox).

    Written by ``serving.services.outbox.emit`` in the transaction of the change it
    reports, so an event exists exactly when its change was committed; delivered later,
    off the request path, by the dispatcher, one ``OutboxDelivery`` row per channel.
    ``return_id`` is deliberately no foreign key: an event is a message, not a part of
    the return, and must stay readable whatever happens to the row it mentions.
    """

    __tablename__ = "outbox"
    id: Mapped[str] = mapped_column(ID, primary_key=True)  # evt_...
    type: Mapped[str] = mapped_column(String(lengths.EVENT_TYPE), index=True)
    return_id: Mapped[str | None] = mapped_column(ID, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # Written with the event (not viewonly): the unit of work then inserts the event
    # before the deliveries that reference it.
    deliveries: Mapped[list[OutboxDelivery]] = relationship(order_by="OutboxDelivery.channel")


class OutboxDelivery(Base):
    """One channel's delivery of one outbox event (webhook or e-mail) and its state.

    ``status``: pending (to send, from ``next_attempt_at``), delivered, failed (after the
    last attempt; an admin can resend) or skipped (the channel does not apply). ``id``
    increases with creation, so the dispatcher sends in that order. A dispatcher claims a
    pending row by writing ``claimed_by`` and a lease (``claimed_until``) before it sends,
    so another worker leaves it alone until the lease runs out.
    """

    __tablename__ = "outbox_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "channel"),
        Index("ix_outbox_deliveries_due", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("outbox.id"))
    channel: Mapped[str] = mapped_column(String(16))  # webhook | email
    status: Mapped[str] = mapped_column(String(16))  # pending|delivered|failed|skipped
    recipient: Mapped[str | None] = mapped_column(String(lengths.EMAIL))  # e-mail only
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Job(Base):
    """One background job (``serving.services.jobs``), kept for ``returnlens jobs list``
    and ``GET /v1/admin/jobs``: ``id`` is the queue's task id, ``status`` queued |
    running | retrying | done | failed | interrupted, ``attempts`` the runs started,
    ``last_error`` the last failure. A ``running`` row whose ``lease_until`` passed lost
    its worker; the sweep enqueues it again under the same id."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_enqueued_at", "status", "enqueued_at"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    args: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(100))
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Resolution(Base):
    """How an accepted return is settled (``serving.policy.resolution``): one row per
    return, planned when it is accepted and ``issued`` when the shop is told to pay
    (at once for an instant refund or keep-it, else when the parcel is dispositioned)."""

    __tablename__ = "resolutions"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    return_id: Mapped[str] = mapped_column(ForeignKey("returns.id"), unique=True)
    method: Mapped[str] = mapped_column(String(20))  # refund | store_credit | exchange
    timing: Mapped[str] = mapped_column(String(20))  # instant | on_receipt | keep_it
    amount: Mapped[float] = mapped_column(MONEY)
    expected_recovery: Mapped[float | None] = mapped_column(MONEY)
    offer: Mapped[list[str]] = mapped_column(JSONType)
    exchange_sku: Mapped[str | None] = mapped_column(SHOP_ID)
    status: Mapped[str] = mapped_column(String(20))  # planned|issued|cancelled|revoked
    policy_version: Mapped[str] = mapped_column(MODEL_VERSION)
    planned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RateLimitCounter(Base):
    """A rate-limit counter shared by every worker and replica
    (``serving.storage.ratelimit_store``): the hits of one limit key in one window
    (index ``window``: the window starts ``window * length`` seconds after the epoch;
    -1 for a fixed-window counter), removed once ``expires_at`` (epoch seconds) passed."""

    __tablename__ = "rate_limit_counters"
    __table_args__ = (Index("ix_rate_limit_counters_expires_at", "expires_at"),)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float)
