"""The shopper flow: look up an order, create a return, upload photos, read the return.

``upload_photos`` works in a fixed order so a refusal never leaves half a record:

1. read the stored context (return, order, history, earlier photos, reused-photo
   hashes, reference embedding) in ONE transaction, on a helper thread while the
   uploads' sha256 are computed and the light ones decoded; return-level refusals
   (unknown or closed return, photo count) come first, then duplicates, refused from
   the bytes' hash: six copies of one pixel bomb cost six hashes, not six decodes (an
   upload that repeats a file, or a heavy photo, is not decoded early);
2. decode EVERY upload; one bad file refuses the whole request before any grading (an
   early decode's error is raised here, after the refusals above). A photo whose
   header says it is heavy (a big PNG) decodes on the process's bounded heavy-decode
   lane (``vision.pipeline.Lanes``), so it cannot starve other uploads;
3. write the photo files (content-addressed, atomic) on a helper thread while the
   photos are graded in one ONNX batch; every photo is encoded before the first file
   is written (``PhotoStore.put_all``), so a photo that cannot be stored leaves no
   file of the others. A failure after the files are written leaves orphan files
   only, which are harmless: nothing references them, an identical later upload
   reuses the same names and ``returnlens storage gc`` removes the rest;
4. combine context and grading into the policy's facts and run the pure policy;
5. ONE transaction: photos + grading + decision + return status + audit row, committed
   before the method returns, so the answer a shopper sees is always on disk.

An upload with an ``Idempotency-Key`` is looked up first: a retry of an upload that was
stored (the shopper's connection dropped before the answer arrived) gets that upload's
answer again, never a second decision.

Steps 1 and 3 overlap I/O and GIL-free work (hashing, ONNX Runtime, fsync) with the
request's Python work: the service's cost over the decode+inference
floor is the point of ``returnlens bench``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy.exc import IntegrityError

from serving.credentials import same_secret, secret_hash
from serving.domain_errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from serving.services import (
    capture,
    copy_check,
    decide,
    facts,
    lifecycle,
    limits,
    outbox,
    resolutions,
)
from serving.services.inputs import CreateReturnRequest
from serving.services.outputs import (
    CreatedReturnOut,
    OrderLookupOut,
    ResolutionOut,
    ReturnOut,
    StaffTimelineOut,
    TimelineOut,
    UploadOut,
)
from serving.services.service import MAX_PHOTOS_PER_RETURN, OPEN_STATUSES, ReturnLensService
from serving.storage import repo, search_facts, upload_reads
from serving.storage.tables import Grading, Return
from vision.types import DecodedPhoto


def create_return(svc: ReturnLensService, req: CreateReturnRequest) -> CreatedReturnOut:
    """The reason, note and e-mail were validated by ``CreateReturnRequest``."""
    note = req.note
    now = svc.now()
    with svc.db.read() as s:
        order = repo.get_order(s, req.order_id)
        customer = repo.get_customer(s, order.customer_id) if order is not None else None
        if order is None or (
            req.email is not None
            and not _same_email(req.email, customer.email if customer else None)
        ):
            raise NotFound(
                f"There is no order {req.order_id!r}.",
                code="unknown_order",
                details={"order_id": req.order_id},
            )
        line = repo.order_line(s, req.order_id, req.sku)
        item = repo.get_catalog_item(s, req.sku)
        if line is None or item is None:
            raise NotFound(
                f"SKU {req.sku!r} is not on order {req.order_id!r}.",
                code="unknown_sku",
                details={"order_id": req.order_id, "sku": req.sku},
            )
        if order.delivered_at is None:
            raise Invalid(
                f"Order {req.order_id!r} has not been delivered yet.",
                code="not_delivered",
                details={"order_id": req.order_id},
            )
        blockers = decide.precheck(
            svc.policy,
            category=item.category,
            sku=item.sku,
            price=float(line.price),
            reason=req.reason,
            delivered_at=order.delivered_at,
            now=now,
        )
        customer_id = order.customer_id
        category = item.category
    if blockers:
        flag = blockers[0]
        raise Invalid(flag.message, code=flag.code, details=dict(flag.evidence))
    token = secrets.token_urlsafe(32)
    return_id = repo.new_id("ret")
    with svc.db.write() as s:
        limits.expire_abandoned(s, now, svc.abandoned_after, customer_id=customer_id)
        limits.check_quantity(s, req.order_id, req.sku, now)
        ret = Return(
            id=return_id,
            order_id=req.order_id,
            sku=req.sku,
            customer_id=customer_id,
            reason=req.reason,
            note=note,
            status="awaiting_photos",
            shopper_token_hash=secret_hash(token),
            created_at=now,
            updated_at=now,
        )
        s.add(ret)
        search_facts.refresh(s, ret)
        repo.append_audit(
            s,
            at=now,
            actor=f"shopper:{return_id}",
            action="return_created",
            subject_type="return",
            subject_id=return_id,
            payload={
                "order_id": req.order_id,
                "sku": req.sku,
                "reason": req.reason,
                "note": note is not None,
            },
        )
        outbox.emit(
            s,
            type="return.created",
            return_id=return_id,
            payload={"order_id": req.order_id, "sku": req.sku, "reason": req.reason},
            now=now,
        )
    return CreatedReturnOut(
        return_id=return_id,
        token=token,
        required_views=capture.required_views(svc.policy, category),
    )


def lookup_order(svc: ReturnLensService, order_id: str, email: str) -> OrderLookupOut:
    """The order's items, for the shopper to pick one to return.

    An unknown order and a wrong email raise the same NotFound (no details), so order
    numbers cannot be probed.
    """
    with svc.db.read() as s:
        order = repo.get_order(s, order_id)
        customer = repo.get_customer(s, order.customer_id) if order is not None else None
        if order is None or not _same_email(email, customer.email if customer else None):
            raise NotFound(
                "We can't find an order with that number and email address.", code="unknown_order"
            )
        return OrderLookupOut.model_validate(order)


def _same_email(given: str, stored: str | None) -> bool:
    if stored is None:
        return False
    a, b = given.strip().casefold(), stored.strip().casefold()
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def check_shopper_token(svc: ReturnLensService, return_id: str, token: str) -> None:
    """Unauthorized without a token; Forbidden when it is not this return's token. An
    unknown return id is Forbidden too, so a token holder cannot probe for other ids."""
    if not token:
        raise Unauthorized("A shopper token is required for this return.", code="unauthorized")
    with svc.db.read() as s:
        stored = upload_reads.shopper_token_hash(s, return_id)
    # an unknown id costs the same hash and comparison as a wrong token
    if not same_secret(token, stored or secret_hash(secrets.token_hex(8))) or stored is None:
        raise Forbidden("This token does not give access to this return.", code="forbidden")


def _check_open(return_id: str, status: str) -> None:
    if status not in OPEN_STATUSES:
        raise Conflict(
            f"Return {return_id} is already {status}; no more photos are needed.",
            code="already_decided",
            details={"status": status},
        )


def _check_count(existing: int, n_new: int) -> None:
    if n_new == 0:
        raise Invalid("Add at least one photo.", code="no_photos")
    if existing + n_new > MAX_PHOTOS_PER_RETURN:
        raise Invalid(
            f"A return takes at most {MAX_PHOTOS_PER_RETURN} photos; it has "
            f"{existing} and this upload adds {n_new}.",
            code="too_many_photos",
            details={"existing": existing, "uploaded": n_new, "max_photos": MAX_PHOTOS_PER_RETURN},
        )


def _check_duplicates(known: Sequence[str], new: Sequence[str]) -> None:
    seen = set(known)
    for i, digest in enumerate(new):
        if digest in seen:
            raise Conflict(
                f"Photo {i + 1} was already uploaded to this return.",
                code="duplicate_upload",
                details={"index": i},
            )
        seen.add(digest)


def upload_fingerprint(sha256: Sequence[str]) -> str:
    """sha256 over the sha256 of every uploaded file (``sha256``), in order (bytes as
    received)."""
    return hashlib.sha256("\n".join(sha256).encode("ascii")).hexdigest()


def upload_photos(
    svc: ReturnLensService,
    return_id: str,
    uploads: list[bytes],
    *,
    idempotency_key: str | None = None,
    views: Sequence[str] | None = None,
) -> UploadOut:
    """Grade an upload and decide; with an ``idempotency_key`` (the ``Idempotency-Key``
    header) a retry is safe: the same key with the same photos on this return answers
    the decision stored by the first attempt (``replayed``), even once the return is
    decided, instead of ``already_decided`` or ``duplicate_upload``; the same key with
    other photos is a 409 ``idempotency_conflict``. A retry racing its first attempt
    waits for the return's row lock and then gets the first attempt's answer.

    ``views``: the view each photo shows (guided capture), one per photo, '' for none;
    checked against the category's views (``capture.check_views``)."""
    # Each file hashed once, first: the duplicates, the idempotency fingerprint, the
    # photo rows and the decode read these. (Each hash gives the GIL back, and once the
    # context read runs Python on a helper thread, taking it again can wait for that
    # thread's turn to end.)
    sha256 = [hashlib.sha256(data).hexdigest() for data in uploads]
    if idempotency_key is None:
        return _upload(svc, return_id, uploads, sha256, None, views)
    key = (idempotency_key, upload_fingerprint(sha256))
    stored = _replayed(svc, return_id, *key)
    if stored is not None:
        return stored
    try:
        return _upload(svc, return_id, uploads, sha256, key, views)
    except Conflict:  # already decided or a concurrent upload: was it this key's attempt?
        stored = _replayed(svc, return_id, *key)
        if stored is None:
            raise
        return stored


def _replayed(
    svc: ReturnLensService, return_id: str, key: str, fingerprint: str
) -> UploadOut | None:
    """The stored answer to the upload that carried ``key`` on this return, if any."""
    with svc.db.read() as s:
        row = repo.decision_by_key(s, return_id, key)
        if row is None:
            return None
        if row.request_fingerprint != fingerprint:
            raise Conflict(
                "This idempotency key was already used for other photos on this return; "
                "send a new key with new photos.",
                code="idempotency_conflict",
                details={"decision_id": row.id},
            )
        grading = s.get(Grading, row.grading_id)
        photos = repo.photos_by_id(s, grading.photo_ids if grading is not None else [])
        out = UploadOut.model_validate(
            {"return_id": return_id, "photos": photos, "decision": row, "replayed": True}
        )
    return out


def _upload(
    svc: ReturnLensService,
    return_id: str,
    uploads: list[bytes],
    sha256: list[str],  # of each file, hex, in order (``upload_photos``)
    key: tuple[str, str] | None,
    views: Sequence[str] | None,
) -> UploadOut:
    _check_count(0, len(uploads))  # the request alone, before touching the database
    now = svc.now()
    pending = svc.pool.submit(facts.load_upload_context, svc, return_id, now)
    early = _decode_light(svc, uploads, sha256)  # while it loads
    ctx = pending.result()
    _check_context(ctx, len(uploads))  # return-level refusals first
    shown = capture.check_views(svc.policy, ctx.category, views, len(uploads))
    _check_duplicates(ctx.known_sha256, sha256)  # from the bytes: a heavy one never decoded
    if early.error is not None:  # a bad file: refused after the checks above, as ever
        raise early.error
    decoded = [  # heavy ones: bounded lane
        p if p is not None else svc.grader.decode(data, digest)
        for p, data, digest in zip(early.photos, uploads, sha256, strict=True)
    ]
    # The copy check first: the longest task of the upload, it ends the parallel part.
    copies = copy_check.start(svc, decoded, return_id)  # beside the gate and the model
    stored = svc.pool.submit(svc.photos.put_all, decoded, uploads)
    result = svc.grader.grade_decoded(decoded, describe=False)
    checks = [c.result() for c in copies]
    result = copy_check.with_descriptors(result, checks)
    f = facts.gather_upload_facts(svc, ctx, result, shown)
    copied, catalog_copy = copy_check.best_matches(checks, f.new_photo_ids)
    f = replace(f, copied=copied, catalog_copy=catalog_copy)
    decision = decide.shopper_decision(
        svc.policy,
        category=f.category,
        sku=f.sku,
        price=f.price,
        reason=f.reason,
        delivered_at=f.delivered_at,
        now=now,
        photos=f.photo_qualities,
        item=f.item,
        history_times=f.history_times,
        rejected_returns=f.rejected_returns,
        similarity=f.similarity,
        has_reference=f.has_reference,
        reused=f.reused,
        previous_retakes=f.previous_retakes,
        copied=f.copied,
        catalog_copy=f.catalog_copy,
    )
    digests = stored.result()  # files first, then the rows
    try:
        with svc.db.write() as s:
            # with the key, a retry finds this decision
            photo_rows, decision_row = facts.store_upload(
                s, svc, f, result, decision, digests, now, key
            )
            out = UploadOut.model_validate(
                {"return_id": return_id, "photos": photo_rows, "decision": decision_row}
            )
            hashes = [(p.id, return_id, p.phash, now) for p in photo_rows]
            vectors = [(p.id, return_id, p.copy_vector, now) for p in photo_rows if p.copy_vector]
    except IntegrityError as exc:  # a concurrent upload to the same return won the race
        raise Conflict(
            "Another upload to this return was saved at the same moment; "
            "reload the return and try again.",
            code="concurrent_upload",
        ) from exc
    svc.phash_index.add(hashes)  # committed: later uploads compare against these too
    svc.copy_index.add(vectors)
    if svc.shadow is not None:  # the challenger, queued off this request (or skipped)
        svc.shadow.submit(out.decision.decision_id)
    return out


@dataclass(frozen=True)
class _EarlyDecode:
    """The light photos decoded while the return's context loads (None: not yet)."""

    photos: list[DecodedPhoto | None]
    error: Exception | None = None  # raised only once the context's refusals are checked


def _decode_light(svc: ReturnLensService, uploads: list[bytes], sha256: list[str]) -> _EarlyDecode:
    """Decode the light uploads (``Grader.decode_if_light``) while the context read runs on
    the helper pool: at 1600 px each takes about as long as that read, which used to be
    waited for first. A heavy one (a pixel bomb) waits for the refusals that need no
    decode, and so does every photo of an upload that repeats a file (refused as a
    duplicate). A photo this return already has costs one light decode before its
    refusal. The first decode error is kept and raised after the context's checks, so
    refusals come in the same order as before."""
    photos: list[DecodedPhoto | None] = [None] * len(uploads)
    if len(set(sha256)) != len(sha256):
        return _EarlyDecode(photos)
    for i, data in enumerate(uploads):
        try:
            photos[i] = svc.grader.decode_if_light(data, sha256[i])
        except Exception as exc:  # re-raised by the caller, after its checks
            return _EarlyDecode(photos, exc)
    return _EarlyDecode(photos)


def _check_context(ctx: facts.UploadContext, n_new: int) -> None:
    _check_open(ctx.return_id, ctx.status)
    _check_count(ctx.existing_count, n_new)


def get_return(svc: ReturnLensService, return_id: str) -> ReturnOut:
    with svc.db.read() as s:
        ret = repo.require_return(s, return_id)
        out = ReturnOut.model_validate(ret)  # its item, decisions and photos load here
        out.required_views = capture.required_views(svc.policy, out.category)
        entries = lifecycle.timeline(s, ret)
        settled = resolutions.get(s, ret.id)
        if settled is not None:
            out.resolution = ResolutionOut.model_validate(resolutions.view(settled))
    out.timeline = [
        TimelineOut(at=e.at, status=e.status, sentence=e.sentence, by=lifecycle.actor_kind(e.actor))
        for e in entries
    ]
    latest = out.decisions[-1].message if out.decisions else None
    out.status_message = lifecycle.status_message(entries, latest)
    if out.status == "resolved" and out.resolution is not None:
        out.status_message = out.resolution.message
    return out


def staff_timeline(svc: ReturnLensService, return_id: str) -> list[StaffTimelineOut]:
    """The return's status changes with who and why (reviewers and admins)."""
    with svc.db.read() as s:
        ret = repo.require_return(s, return_id)
        entries = lifecycle.timeline(s, ret)
    return [
        StaffTimelineOut(
            at=e.at,
            status=e.status,
            sentence=e.sentence,
            by=lifecycle.actor_kind(e.actor),
            previous=e.previous,
            actor=e.actor,
            why=e.why,
            details=e.details,
        )
        for e in entries
    ]
