"""Dock inspections: grade the parcel's item, then tier, channel and recovery.

Idempotent on the station's idempotency key. The request fingerprint (the return id the
label named plus the sha256 of every photo, in order) is stored with the key: the same
key with the same fingerprint answers the stored inspection (``replayed=True``); the same
key with anything else is a Conflict. Two identical requests racing each other are
settled by the UNIQUE constraint on the key: the loser's insert fails, it reads the
winner's row and answers it as a replay.

An item whose label names no known return (or has no label) is stored as ``unmatched``
with a review flag, not refused: the parcel is on the dock either way and a person must
find its return. Without an order line there is no price, so no channel is priced.

Before a matched item is routed, the dock checks it the way the shopper path does: the
photos against the SKU's catalog reference (``wrong_item``, the policy's similarity
bar; ``no_reference_photo`` when the SKU has none) and whether the model knows such
photos (``unfamiliar_photo``, or ``model_cannot_tell`` with an older model). When one
of these holds the item (``DockDisposition.held``), the inspection is stored for review
with NO channel and no expected recovery, like an unmatched parcel: the station prints
"review", and the priced alternatives stay for the person who decides. The checked
facts are stored too (``similarity``, ``familiar``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from serving.domain_errors import Conflict, Invalid, NotFound
from serving.policy import DEFAULT_CATEGORY
from serving.services import decide, lifecycle, outbox, policies, resolutions
from serving.services.facts import photo_row, reference_embedding
from serving.services.inputs import InspectionRequest
from serving.services.records import InspectionOut
from serving.services.scores import probs_dict, rounded_list
from serving.services.service import MAX_PHOTOS_PER_INSPECTION, ReturnLensService
from serving.storage import repo, search_facts
from serving.storage.tables import Grading, Inspection, Photo, Return
from vision.aggregate import aggregate, cosine_similarity
from vision.pipeline import GradeResult
from vision.types import ItemScores


def fingerprint(return_id: str | None, photo_sha256: list[str]) -> str:
    text = "\n".join([return_id or "", *photo_sha256])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_count(req: InspectionRequest) -> None:
    """Key, station and label were validated by ``InspectionRequest``; the photo count is
    the service's own rule (the same codes as a return's)."""
    if not req.photos:
        raise Invalid("Add at least one photo.", code="no_photos")
    if len(req.photos) > MAX_PHOTOS_PER_INSPECTION:
        raise Invalid(
            f"An inspection takes at most {MAX_PHOTOS_PER_INSPECTION} photos.",
            code="too_many_photos",
            details={"uploaded": len(req.photos), "max_photos": MAX_PHOTOS_PER_INSPECTION},
        )


def _out(row: Inspection, *, replayed: bool = False) -> InspectionOut:
    out = InspectionOut.model_validate(row)
    out.replayed = replayed
    return out


def _replay(row: Inspection, fp: str) -> InspectionOut:
    if row.request_fingerprint != fp:
        raise Conflict(
            "This idempotency key was already used for a different inspection "
            "(other photos or another return).",
            code="idempotency_conflict",
            details={"inspection_id": row.id},
        )
    return _out(row, replayed=True)


def inspect(svc: ReturnLensService, req: InspectionRequest) -> InspectionOut:
    _check_count(req)
    claimed = req.return_id
    fp = fingerprint(claimed, [hashlib.sha256(p).hexdigest() for p in req.photos])
    with svc.db.read() as s:
        existing = repo.inspection_by_key(s, req.idempotency_key)
        if existing is not None:
            return _replay(existing, fp)
    grader = svc.dock_grader
    decoded = [grader.decode(data) for data in req.photos]  # any DecodeError: refuse all
    result = grader.grade_decoded(decoded)
    now = svc.now()
    row = _build(svc, req, claimed, fp, result, now)
    digests = svc.photos.put_all(decoded, req.photos)  # all encoded, then written
    try:
        with svc.db.write() as s:
            _store(s, svc, row, result, digests, now)
            view = _out(row)
    except IntegrityError:
        with svc.db.read() as s:
            winner = repo.inspection_by_key(s, req.idempotency_key)
            if winner is None:
                raise
            return _replay(winner, fp)
    return view


def dock_may_see_photo(svc: ReturnLensService, photo_id: str) -> bool:
    """A dock key's photo scope: the photos of inspections, and the shopper photos of a
    return a dock inspection was matched to (the item on the dock). Not reference
    photos, not the photos of returns no dock has seen, not unknown ids."""
    with svc.db.read() as s:
        row = s.get(Photo, photo_id)
        if row is None:
            return False
        if row.inspection_id is not None:
            return True
        return (
            row.role == "shopper"
            and row.return_id is not None
            and repo.return_inspected(s, row.return_id)
        )


def get_inspection(svc: ReturnLensService, inspection_id: str) -> InspectionOut:
    with svc.db.read() as s:
        row = s.get(Inspection, inspection_id)
    if row is None:
        raise NotFound(f"There is no inspection {inspection_id!r}.", code="unknown_inspection")
    return _out(row)


def _item(svc: ReturnLensService, result: GradeResult) -> tuple[ItemScores, bool]:
    """Scores over the usable photos, or over all photos (flagged) when none passed."""
    if result.item is not None:
        return result.item, True
    card = svc.dock_grader.card
    return aggregate(
        [g.scores for g in result.photos], card.grade_labels, card.damage_labels
    ), False


def _build(
    svc: ReturnLensService,
    req: InspectionRequest,
    claimed: str | None,
    fp: str,
    result: GradeResult,
    now: datetime,
) -> Inspection:
    item, quality_passed = _item(svc, result)
    card = svc.dock_grader.card
    with svc.db.read() as s:
        ret = repo.get_return(s, claimed) if claimed else None
        line = repo.order_line(s, ret.order_id, ret.sku) if ret else None
        cat = repo.get_catalog_item(s, ret.sku) if ret else None
        latest = repo.latest_decision(s, ret.id) if ret else None
    fields: dict[str, Any] = {}
    if ret is not None and line is not None and cat is not None:
        shopper_grade = latest.grade if latest else None
        # Outside the session: a stale reference embedding runs the model.
        reference = reference_embedding(svc, cat, svc.dock_grader)
        similarity = None if reference is None else cosine_similarity(item.embedding, reference)
        disp = decide.dock_disposition(
            svc.policy,
            category=cat.category,
            price=float(line.price),
            item=item,
            shopper_grade=shopper_grade,
            quality_passed=quality_passed,
            sku=cat.sku,
            similarity=similarity,
            has_reference=reference is not None,
        )
        fields = dict(
            status="matched",
            return_id=ret.id,
            shopper_decision_id=latest.id if latest else None,
            shopper_grade=shopper_grade,
            tier=disp.tier,
            markdown=disp.markdown,
            channel=None if disp.held else disp.channel,
            expected_recovery=None if disp.held else round(float(disp.expected_recovery), 2),
            alternatives=[a.to_dict() for a in disp.alternatives],
            flags=[f.to_dict() for f in disp.flags],
            similarity=None if similarity is None else round(similarity, 6),
            needs_review=disp.needs_review,
            policy_version=disp.policy_version,
        )
    else:
        tier, markdown = decide.tier_for(svc.policy, DEFAULT_CATEGORY, item.grade)
        fields = dict(
            status="unmatched",
            return_id=None,
            shopper_decision_id=None,
            shopper_grade=None,
            tier=tier,
            markdown=markdown,
            channel=None,
            expected_recovery=None,
            alternatives=[],
            flags=[_unmatched_flag(claimed)],
            similarity=None,
            needs_review=True,
            policy_version=svc.policy.version,
        )
    return Inspection(
        id=repo.new_id("ins"),
        idempotency_key=req.idempotency_key,
        request_fingerprint=fp,
        station_id=req.station_id,
        claimed_return_id=claimed,
        grading_id=repo.new_id("grd"),
        grade=item.grade,
        confidence=round(item.confidence, 6),
        grade_probs=probs_dict(card.grade_labels, item.grade_probs),
        damage_probs=probs_dict(card.damage_labels, item.damage_probs),
        familiar=item.familiar,
        review_status="pending" if fields["needs_review"] else "none",
        model_version=result.model_version,
        created_at=now,
        photo_ids=[],
        **fields,
    )


def _unmatched_flag(claimed: str | None) -> dict[str, Any]:
    if claimed is None:
        message = "The parcel has no readable return label; match it to a return by hand."
        code = "no_return_label"
    else:
        message = (
            f"The label names return {claimed!r}, which does not exist; "
            "match the parcel to a return by hand."
        )
        code = "unknown_return"
    return {
        "code": code,
        "message": message,
        "effect": "review",
        "evidence": {"claimed_return_id": claimed},
    }


def _consistency_flag(ret: Return) -> dict[str, Any] | None:
    """Why this return should not be on the dock now, or None when it may be."""
    if ret.status in lifecycle.RECEIVABLE:
        return None
    if ret.status in ("received", "graded", "dispositioned", "resolved", "closed"):
        code, message = (
            "already_inspected",
            f"Return {ret.id} was already received at the dock; check for a second parcel.",
        )
    else:
        code, message = (
            "not_pre_approved",
            f"Return {ret.id} is {ret.status}, not approved for return; hold the parcel "
            "until someone decides.",
        )
    return {
        "code": code,
        "message": message,
        "effect": "review",
        "evidence": {"status": ret.status},
    }


def _receive(s: Any, row: Inspection, now: datetime) -> None:
    """Move the return through received -> graded (-> dispositioned when routed), or
    hold the inspection for review with a specific flag when the return may not be
    received now (not approved, already inspected). The inspection is stored either way:
    the parcel is on the dock."""
    ret = repo.get_return(s, str(row.return_id), lock=True)
    if ret is None:  # deleted between grading and storing: keep the parcel, say why
        return
    flag = _consistency_flag(ret)
    if flag is not None:
        row.flags = [*row.flags, flag]
        row.needs_review, row.review_status = True, "pending"
        row.channel, row.expected_recovery = None, None
        return
    steps = (
        ["received", "graded"] if row.channel is None else ["received", "graded", "dispositioned"]
    )
    lifecycle.move_through(
        s,
        ret,
        steps,
        actor=f"station:{row.station_id}",
        why=f"inspection {row.id}",
        now=now,
        details={"inspection_id": row.id, "grade": row.grade, "channel": row.channel},
    )
    if ret.status == "dispositioned" and not row.needs_review:  # nothing left to check
        resolutions.settle(s, ret, now=now, actor=f"station:{row.station_id}")


def _store(
    s: Any,
    svc: ReturnLensService,
    row: Inspection,
    result: GradeResult,
    digests: list[str],
    now: datetime,
) -> None:
    card = svc.dock_grader.card
    ids = [repo.new_id("pho") for _ in result.photos]
    usable = [pid for pid, g in zip(ids, result.photos, strict=True) if g.quality.passed]
    row.photo_ids = ids
    if row.return_id is not None:
        _receive(s, row, now)
    s.add(
        Grading(
            id=row.grading_id,
            subject_type="inspection",
            subject_id=row.id,
            profile=svc.dock_grader.profile,
            model_version=row.model_version,
            grade=row.grade,
            confidence=row.confidence,
            grade_probs=row.grade_probs,
            damage_probs=row.damage_probs,
            embedding=None if result.item is None else rounded_list(result.item.embedding),
            photo_ids=ids,
            usable_photo_ids=usable,
            created_at=now,
        )
    )
    s.flush()
    s.add(row)
    s.flush()  # the key's UNIQUE constraint fires here for a racing duplicate
    search_facts.refresh_id(s, row.return_id)
    policies.record_policy(s, svc.policy, now)  # its text, for replay
    s.add_all(
        [
            photo_row(
                pid,
                g,
                digest,
                i,
                card,
                row.model_version,
                now,
                role="dock",
                inspection_id=row.id,
            )
            for i, (pid, g, digest) in enumerate(zip(ids, result.photos, digests, strict=True))
        ]
    )
    payload = {
        "inspection_id": row.id,
        "status": row.status,
        "return_id": row.return_id,
        "claimed_return_id": row.claimed_return_id,
        "grade": row.grade,
        "channel": row.channel,
        "flags": [f["code"] for f in row.flags],
        "model_version": row.model_version,
        "policy_version": row.policy_version,
    }
    actor = f"station:{row.station_id}"
    repo.append_audit(
        s,
        at=now,
        actor=actor,
        action="dock_inspected",
        subject_type="inspection",
        subject_id=row.id,
        payload=payload,
    )
    if row.return_id is not None:
        repo.append_audit(
            s,
            at=now,
            actor=actor,
            action="dock_inspected",
            subject_type="return",
            subject_id=row.return_id,
            payload=payload,
        )
    event = {**payload, "tier": row.tier, "needs_review": row.needs_review}
    outbox.emit(s, type="inspection.completed", return_id=row.return_id, payload=event, now=now)
