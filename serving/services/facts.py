"""Facts the shopper decision needs, read from storage, and the one write of an upload.

A decision covers every usable photo of the return graded by the current model (earlier
uploads' stored scores plus this upload's), so a retake replaces the blurry photo
without losing the good views already sent, and damage seen in any view still counts
(worst-view aggregation). The quality verdicts passed to the policy are this upload's
plus the earlier usable photos, so an earlier blurry photo does not keep asking for
retakes once a good one arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

import numpy as np
from sqlalchemy import insert
from sqlalchemy.orm import Session

from serving.domain_errors import Conflict, Invalid, NotFound
from serving.policy import CopyMatch, PhotoQuality, ShopperDecision
from serving.services import decide, lifecycle, limits, outbox, policies, resolutions
from serving.services.scores import (
    photo_scores_from_json,
    photo_scores_json,
    policy_scores,
    probs_dict,
    rounded_list,
)
from serving.services.service import OPEN_STATUSES, ReturnLensService
from serving.storage import repo, search_facts, upload_reads, upload_writes
from serving.storage.photostore import MEDIA_TYPE
from serving.storage.tables import CatalogItem, Decision, Grading, Photo, Return
from vision import copydetect
from vision.aggregate import aggregate, cosine_similarity
from vision.card import ModelCard
from vision.phash import phash_hex
from vision.pipeline import GradedPhoto, Grader, GradeResult
from vision.types import ItemScores, PhotoScores

# The shopper's words for a decision outcome (the decision.made e-mail's subject).
RESULTS = {
    "approved": "approved",
    "retake": "please retake a photo",
    "needs_review": "we'll take a closer look",
    "rejected": "not accepted",
}


@dataclass(frozen=True)
class ReturnFacts:
    """What the policy reads about the return itself (stored with the decision)."""

    return_id: str
    customer_id: str
    sku: str
    category: str
    price: float
    reason: str
    delivered_at: datetime
    existing_count: int
    max_sequence: int
    previous_retakes: int
    earlier_usable_ids: tuple[str, ...]  # passed the gate, graded by the current model
    history_times: tuple[datetime, ...]
    rejected_returns: int


@dataclass(frozen=True)
class UploadContext(ReturnFacts):
    """Everything an upload needs from storage, read in ONE transaction.

    Nothing here depends on the new photos, so it is read while they are decoded; the
    refusals it enables (unknown or closed return, too many photos, a duplicate) still
    come before any grading.
    """

    status: str
    known_sha256: tuple[str, ...]
    earlier_scores: tuple[PhotoScores, ...]
    earlier_views: tuple[str | None, ...]  # the view each earlier usable photo shows
    reference: np.ndarray | None  # the SKU's catalog embedding for the current model


@dataclass(frozen=True)
class UploadFacts(ReturnFacts):
    new_photo_ids: tuple[str, ...]
    new_views: tuple[str | None, ...]  # the view each new photo shows (None: not said)
    photo_qualities: tuple[PhotoQuality, ...]  # earlier usable + this upload
    item: ItemScores | None  # over earlier usable + this upload's usable photos
    similarity: float | None
    has_reference: bool  # False: the SKU has no catalog photo (no_reference_photo)
    # distance, other return id, other photo id, the new photo it is nearest to
    reused: tuple[int, str, str, str] | None
    # Copy detection (``serving/services/copy_check.py``): the best verified match among
    # other returns' photos and among the catalog's reference photos.
    copied: CopyMatch | None = None
    catalog_copy: CopyMatch | None = None


def load_upload_context(svc: ReturnLensService, return_id: str, now: datetime) -> UploadContext:
    card = svc.grader.card
    with svc.db.read() as s:
        head = upload_reads.return_header(s, return_id)
        if head is None:
            raise NotFound(f"There is no return {return_id!r}.", code="unknown_return")
        if not head.order_found or head.line_price is None or head.category is None:
            raise NotFound("The order line of this return no longer exists.", code="unknown_order")
        if head.delivered_at is None:
            raise Invalid(
                f"Order {head.order_id!r} has not been delivered yet.", code="not_delivered"
            )
        existing = list(repo.return_photos(s, return_id)) if head.photo_count else []
        since = now - decide.history_window(svc.policy)
        history = upload_reads.history_times(
            s, head.customer_id, since, return_id, limits.NOT_COUNTED
        )
        svc.phash_index.refresh(s)
        svc.copy_index.refresh(s)
    earlier = [
        p
        for p in existing
        if p.quality.get("passed") and p.scores.get("model_version") == card.model_version
    ]
    return UploadContext(
        return_id=return_id,
        status=head.status,
        customer_id=head.customer_id,
        sku=head.sku,
        category=head.category,
        price=head.line_price,
        reason=head.reason,
        delivered_at=head.delivered_at,
        existing_count=len(existing),
        known_sha256=tuple(p.upload_sha256 for p in existing),
        max_sequence=head.max_sequence,
        previous_retakes=head.retakes,
        earlier_usable_ids=tuple(p.id for p in earlier),
        earlier_views=tuple(p.view for p in earlier),
        earlier_scores=tuple(
            photo_scores_from_json(p.scores, card.grade_labels, card.damage_labels) for p in earlier
        ),
        history_times=history,
        rejected_returns=head.rejected_returns,
        # Outside the session: a stale reference embedding runs the model.
        reference=_reference(
            svc,
            svc.grader,
            head.reference_digest,
            head.reference_embedding,
            head.reference_model_version,
        ),
    )


def gather_upload_facts(
    svc: ReturnLensService,
    ctx: UploadContext,
    result: GradeResult,
    views: tuple[str | None, ...] | None = None,
) -> UploadFacts:
    """Combine the stored context with this upload's grading (no I/O); ``views``: the
    view each new photo shows (checked by ``capture.check_views``)."""
    card = svc.grader.card
    new_ids = tuple(repo.new_id("pho") for _ in result.photos)
    new_views = views if views is not None else (None,) * len(new_ids)
    usable = [*ctx.earlier_scores, *(g.scores for g in result.photos if g.quality.passed)]
    combined = aggregate(usable, card.grade_labels, card.damage_labels) if usable else None
    qualities = tuple(
        PhotoQuality(passed=True, photo_id=pid, view=view)
        for pid, view in zip(ctx.earlier_usable_ids, ctx.earlier_views, strict=True)
    ) + tuple(
        PhotoQuality.from_report(g.quality, photo_id=pid, view=view)
        for pid, g, view in zip(new_ids, result.photos, new_views, strict=True)
    )
    similarity = (
        cosine_similarity(combined.embedding, ctx.reference)
        if combined is not None and ctx.reference is not None
        else None
    )
    shared = {f.name: getattr(ctx, f.name) for f in fields(ReturnFacts)}
    return UploadFacts(
        **shared,
        new_photo_ids=new_ids,
        new_views=new_views,
        photo_qualities=qualities,
        item=combined,
        similarity=similarity,
        has_reference=ctx.reference is not None,
        reused=_nearest_hash(svc, ctx.return_id, [g.phash for g in result.photos], new_ids),
    )


def _nearest_hash(
    svc: ReturnLensService, return_id: str, hashes: list[int], photo_ids: tuple[str, ...]
) -> tuple[int, str, str, str] | None:
    """The nearest pHash of another return's photo to any new photo, and which one."""
    best: tuple[int, str, str, str] | None = None
    for h, pid in zip(hashes, photo_ids, strict=True):
        hit = svc.phash_index.nearest([h], return_id)
        if hit is not None and (best is None or hit[0] < best[0]):
            best = (*hit, pid)
    return best


def copy_match_json(m: CopyMatch | None) -> dict[str, object] | None:
    if m is None:
        return None
    return {
        "score": m.score,
        "photo_id": m.photo_id,
        "other_photo_id": m.other_photo_id,
        "other_return_id": m.other_return_id,
        "sku": m.sku,
    }


def reference_embedding(
    svc: ReturnLensService, item: CatalogItem, grader: Grader | None = None
) -> np.ndarray | None:
    """The SKU's reference embedding for ``grader``'s model (the shopper grader's unless
    given; recomputed if stale), or None when the SKU has no reference photo."""
    return _reference(
        svc,
        grader or svc.grader,
        item.reference_digest,
        item.reference_embedding,
        item.reference_model_version,
    )


def _reference(
    svc: ReturnLensService,
    grader: Grader,
    digest: str | None,
    stored: list[float] | None,
    stored_version: str | None,
) -> np.ndarray | None:
    """``reference_embedding`` of a catalog item's reference columns."""
    version = grader.card.model_version
    if stored is not None and stored_version == version:
        return np.asarray(stored, dtype=np.float32)
    if digest is None:
        return None
    key = (digest, version)
    with svc.lock:
        cached = svc.reference_cache.get(key)
    if cached is None:
        photo = grader.decode(svc.photos.get(digest))
        cached = grader.embed(photo)
        with svc.lock:
            svc.reference_cache[key] = cached
    return cached


_INSERT_GRADING = insert(Grading)


def store_upload(
    s: Session,
    svc: ReturnLensService,
    f: UploadFacts,
    result: GradeResult,
    decision: ShopperDecision,
    digests: list[str],
    now: datetime,
    key: tuple[str, str] | None = None,
) -> tuple[list[Photo], Decision]:
    """Re-check under the return's row lock, then insert everything of one upload, in
    Core statements (``serving/storage/upload_writes.py``): the photo and decision
    objects returned are the rows written, never added to the session. ``key``: the
    upload's (Idempotency-Key, request fingerprint), stored on the decision so a retry
    with it finds this decision."""
    ret, photo_count, max_sequence = upload_writes.locked_return(s, f.return_id)
    if ret.status not in OPEN_STATUSES:
        raise Conflict(f"Return {ret.id} is already {ret.status}.", code="already_decided")
    if (photo_count, max_sequence) != (f.existing_count, f.max_sequence):
        raise Conflict(
            "Another upload to this return was saved at the same moment; "
            "reload the return and try again.",
            code="concurrent_upload",
        )
    card, version = svc.grader.card, svc.model_version
    item = f.item
    grading = {
        "id": repo.new_id("grd"),
        "subject_type": "return",
        "subject_id": f.return_id,
        "profile": svc.grader.profile,
        "model_version": version,
        "grade": item.grade if item else None,
        "confidence": item.confidence if item else None,
        "grade_probs": probs_dict(card.grade_labels, item.grade_probs) if item else {},
        "damage_probs": probs_dict(card.damage_labels, item.damage_probs) if item else {},
        "embedding": rounded_list(item.embedding) if item else None,
        "photo_ids": list(f.new_photo_ids),
        "usable_photo_ids": [
            *f.earlier_usable_ids,
            *(
                pid
                for pid, g in zip(f.new_photo_ids, result.photos, strict=True)
                if g.quality.passed
            ),
        ],
        "created_at": now,
    }
    s.connection().execute(_INSERT_GRADING, grading)
    photos = [
        photo_row(
            pid,
            g,
            digest,
            f.existing_count + i,
            card,
            version,
            now,
            return_id=f.return_id,
            role="shopper",
            view=view,
        )
        for i, (pid, g, digest, view) in enumerate(
            zip(f.new_photo_ids, result.photos, digests, f.new_views, strict=True)
        )
    ]
    row = Decision(
        id=repo.new_id("dec"),
        return_id=f.return_id,
        sequence=f.max_sequence + 1,
        grading_id=grading["id"],
        outcome=decision.outcome,
        flags=[fl.to_dict() for fl in decision.flags],
        grade=decision.grade,
        confidence=decision.confidence,
        grade_probs=grading["grade_probs"],
        damage_probs=grading["damage_probs"],
        shopper_message=decision.shopper_message,
        model_version=version,
        policy_version=decision.policy_version,
        inputs=_decision_inputs(f),
        photo_ids=[*f.earlier_usable_ids, *f.new_photo_ids],
        created_at=now,
        idempotency_key=key[0] if key else None,
        request_fingerprint=key[1] if key else None,
    )
    search_facts.refresh(s, ret, latest=row)  # the row is locked above
    policies.record_policy(s, svc.policy, now)  # its text, for replay
    repo.append_audit(
        s,
        at=now,
        actor=f"shopper:{f.return_id}",
        action="photos_uploaded",
        subject_type="return",
        subject_id=f.return_id,
        payload={
            "decision_id": row.id,
            "sequence": row.sequence,
            "outcome": row.outcome,
            "flags": [fl.code for fl in decision.flags],
            "photo_ids": list(f.new_photo_ids),
            "model_version": version,
            "policy_version": decision.policy_version,
        },
    )
    _after_decision(s, svc, f, ret, row, decision, now)  # may reword the shopper message
    upload_writes.insert_rows(s, photos)
    upload_writes.insert_rows(s, [row])
    upload_writes.update_return(s, ret)
    s.flush()  # a resolution planned above (ORM): its errors surface here, not at commit
    return photos, row


def _after_decision(
    s: Session,
    svc: ReturnLensService,
    f: UploadFacts,
    ret: Return,
    row: Decision,
    decision: ShopperDecision,
    now: datetime,
) -> None:
    """The return moves to the outcome; an approval is planned (and a keep-it tells the
    shopper to keep the item, in the decision's own sentence); then the event."""
    actor = f"shopper:{f.return_id}"
    lifecycle.move(
        s, ret, decision.outcome, actor=actor, why=f"decision {row.id}", now=now,
        details={"decision_id": row.id},
    )  # fmt: skip
    card = svc.grader.card
    scores = (
        policy_scores(card, row.grade_probs, row.damage_probs, fallback=row.grade)
        if decision.outcome == "approved"
        else None
    )
    if scores is not None:
        with s.no_autoflush:  # its read of the return's resolution: none is pending here
            planned = resolutions.plan(
                s, svc, ret, category=f.category, price=f.price, scores=scores,
                rejected_returns=f.rejected_returns, recent_returns=len(f.history_times),
                now=now, actor=actor,
            )  # fmt: skip
        if planned is not None and planned.keep_item:
            row.shopper_message = planned.message
    outbox.emit(
        s,
        type="decision.made",
        return_id=f.return_id,
        payload={
            "decision_id": row.id,
            "outcome": row.outcome,
            "result": RESULTS.get(row.outcome, row.outcome),
            "message": row.shopper_message,
            "grade": row.grade,
            "flags": [fl.code for fl in decision.flags],
        },
        now=now,
    )


def _decision_inputs(f: UploadFacts) -> dict[str, object]:
    """The non-model facts the policy read, stored so the decision can be replayed."""
    return {
        "category": f.category,
        "sku": f.sku,
        "price": f.price,
        "reason": f.reason,
        "delivered_at": f.delivered_at.isoformat(),
        "history_times": [t.isoformat() for t in f.history_times],
        "rejected_returns": f.rejected_returns,
        "similarity": None if f.similarity is None else round(f.similarity, 6),
        "has_reference": f.has_reference,
        "reused_photo": None
        if f.reused is None
        else {
            "distance": f.reused[0],
            "other_return_id": f.reused[1],
            "other_photo_id": f.reused[2],
            "photo_id": f.reused[3],
        },
        "copied_photo": copy_match_json(f.copied),
        "catalog_copy": copy_match_json(f.catalog_copy),
        "previous_retakes": f.previous_retakes,
        "photos": [{"photo_id": q.photo_id, "passed": q.passed} for q in f.photo_qualities],
    }


def photo_row(
    pid: str,
    graded: GradedPhoto,
    digest: str,
    position: int,
    card: ModelCard,
    model_version: str,
    now: datetime,
    *,
    role: str,
    return_id: str | None = None,
    inspection_id: str | None = None,
    view: str | None = None,
) -> Photo:
    """The stored row of one graded photo, shopper's or dock's (``role``)."""
    photo = graded.photo
    return Photo(
        id=pid,
        role=role,
        return_id=return_id,
        inspection_id=inspection_id,
        position=position,
        digest=digest,
        upload_sha256=photo.sha256,
        upload_format=photo.format,
        media_type=MEDIA_TYPE,
        width=photo.width,
        height=photo.height,
        original_width=photo.original_width,
        original_height=photo.original_height,
        phash=phash_hex(graded.phash),
        copy_vector=None if graded.copy is None else copydetect.vector_to_bytes(graded.copy.vector),
        copy_features=None if graded.copy is None else graded.copy.local.to_bytes(),
        quality=graded.quality.to_dict(),
        view=view,
        scores=photo_scores_json(
            graded.scores, card.grade_labels, card.damage_labels, model_version
        ),
        created_at=now,
    )
