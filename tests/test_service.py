"""ReturnLensService on SQLite AND PostgreSQL, with a real (tiny) ONNX model.

The model comes from benchmarks/tiny_model.py: its grade follows the photo's redness and its
embedding follows where the item sits in the frame, so each test paints the photo it
needs. Photos are real JPEGs decoded by the real decoder and judged by the real quality
gate; the database is real; nothing is mocked.
"""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError
from sqlalchemy import create_engine, func, select, text

from serving.domain_errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from serving.services import admin, dock, media, review, shopper
from serving.services.inputs import (
    ApiKeyRequest,
    CreateReturnRequest,
    InspectionRequest,
    ReviewRequest,
)
from serving.services.service import ReturnLensService
from serving.storage.tables import (
    AuditLog,
    CatalogItem,
    Decision,
    Grading,
    Inspection,
    Photo,
    Return,
    Review,
)
from tests.service_data import NOW, blurry, clean, damaged, gps_exif, jpeg, scene
from vision.errors import DecodeError


def new_return(
    svc: ReturnLensService, order: str = "o-1", sku: str = "mug-01", reason: str = "changed_mind"
) -> tuple[str, str]:
    created = shopper.create_return(
        svc, CreateReturnRequest(order_id=order, sku=sku, reason=reason)
    )
    return created.return_id, created.token


def counts(svc: ReturnLensService) -> dict[str, int]:
    with svc.db.read() as s:
        return {
            t.__tablename__: int(s.scalar(select(func.count()).select_from(t)) or 0)
            for t in (Return, Photo, Grading, Decision, Inspection, Review, AuditLog)
        }


def stored_files(svc: ReturnLensService) -> list[Path]:
    return sorted(p for p in svc.photos.root.rglob("*.jpg"))


# ----------------------------------------------------------------------------- shopper
def test_create_upload_get_round_trip(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc)
    result = shopper.upload_photos(svc, rid, [clean(seed=1)])
    d = result.decision
    assert d.outcome == "approved", d.flags
    assert d.grade_label == "A_new" and d.confidence is not None and d.confidence > 0.8
    assert d.model_version == "test-0.1" and d.policy_version == svc.policy.version
    assert d.message and d.sequence == 1
    assert len(result.photos) == 1 and result.photos[0].quality.passed is True
    assert result.photos[0].heatmap_labels[0] == "grade"
    view = shopper.get_return(svc, rid)
    assert view.status == "approved" and view.category == "mug"
    assert [x.decision_id for x in view.decisions] == [d.decision_id]
    assert [p.photo_id for p in view.photos] == [p.photo_id for p in result.photos]
    assert view.decisions[0].grade_probs == d.grade_probs
    actions = [a.action for a in review.audit_history(svc, "return", rid)]
    assert actions == ["return_created", "photos_uploaded", "status_changed"]
    png = media.heatmap_png(svc, result.photos[0].photo_id, "crack")
    overlay = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert overlay is not None and overlay.shape[:2] == (480, 640)
    with pytest.raises(Conflict) as err:  # approved: nothing more to upload
        shopper.upload_photos(svc, rid, [clean(seed=2)])
    assert err.value.code == "already_decided"


def test_blurry_photo_asks_for_a_retake_and_a_retake_adds_a_decision(
    svc: ReturnLensService,
) -> None:
    rid, _ = new_return(svc)
    first = shopper.upload_photos(svc, rid, [blurry(seed=1)])
    assert first.decision.outcome == "retake"
    assert "blur" in {c.name for c in first.photos[0].quality.checks if not c.passed}
    second = shopper.upload_photos(svc, rid, [clean(seed=1)])
    assert second.decision.outcome == "approved" and second.decision.sequence == 2
    view = shopper.get_return(svc, rid)
    assert [d.outcome for d in view.decisions] == ["retake", "approved"]
    assert len(view.photos) == 2


def test_damaged_item_with_changed_mind_needs_review(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc, reason="changed_mind")
    d = shopper.upload_photos(svc, rid, [damaged(seed=1)]).decision
    assert d.outcome == "needs_review"
    assert d.grade_label == "E_damaged" and d.damage_probs["crack"] > 0.9
    codes = {f.code for f in d.flags}
    assert "reason_condition_mismatch" in codes or "non_returnable_condition" in codes


def test_wrong_item_is_flagged_from_the_reference_embedding(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc, sku="mug-01")  # the mug's reference sits top-left
    d = shopper.upload_photos(svc, rid, [clean(seed=3, corner="br")]).decision
    assert d.outcome == "needs_review"
    flag = next(f for f in d.flags if f.code == "wrong_item")
    assert flag.evidence["similarity"] < 0.5
    rid2, _ = new_return(svc, sku="box-02")  # the box's reference sits bottom-right
    assert (
        shopper.upload_photos(svc, rid2, [clean(seed=4, corner="br")]).decision.outcome
        == "approved"
    )


def test_a_photo_reused_from_another_return_is_detected(svc: ReturnLensService) -> None:
    photo = clean(seed=5)
    rid1, _ = new_return(svc, order="o-1")
    first = shopper.upload_photos(svc, rid1, [photo])
    assert first.decision.outcome == "approved"
    rid2, _ = new_return(svc, order="o-2")
    d = shopper.upload_photos(svc, rid2, [photo]).decision
    flag = next(f for f in d.flags if f.code == "reused_photo")
    assert flag.evidence["other_return_id"] == rid1
    assert flag.evidence["other_photo_id"] == first.photos[0].photo_id
    assert flag.evidence["distance"] == 0 and d.outcome == "needs_review"


def test_a_bad_image_refuses_the_whole_upload_and_stores_nothing(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc)
    before, files = counts(svc), stored_files(svc)
    good = clean(seed=1)
    for bad, code in [
        (good[: len(good) // 2], "unreadable_image"),
        (b"GIF89a" + b"\0" * 100, "unsupported_media_type"),
        (b"", "unreadable_image"),
    ]:
        with pytest.raises(DecodeError) as err:
            shopper.upload_photos(svc, rid, [good, bad])
        assert err.value.code == code
    with pytest.raises(DecodeError):  # the dock refuses the same way
        dock.inspect(svc, inspection("k-bad", [good, good[:500]], rid))
    assert counts(svc) == before and stored_files(svc) == files
    assert shopper.get_return(svc, rid).status == "awaiting_photos"


def test_concurrent_uploads_to_one_return_never_half_store(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc)
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def run(seed: int) -> None:
        barrier.wait()
        try:
            results.append(shopper.upload_photos(svc, rid, [blurry(seed=seed)]))
        except Conflict as exc:
            results.append(exc)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (11, 12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(done) + len(refused) == 2 and done
    assert all(r.code == "concurrent_upload" for r in refused)
    view = shopper.get_return(svc, rid)
    assert [d.sequence for d in view.decisions] == list(range(1, len(done) + 1))
    assert len(view.photos) == len(done) == counts(svc)["gradings"]


def test_a_seventh_photo_is_refused(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc)
    with pytest.raises(Invalid) as err:
        shopper.upload_photos(svc, rid, [blurry(seed=i) for i in range(1, 8)])
    assert err.value.code == "too_many_photos"
    assert (
        shopper.upload_photos(svc, rid, [blurry(seed=i) for i in range(1, 6)]).decision.outcome
        == "retake"
    )
    before = counts(svc)
    with pytest.raises(Invalid) as err:
        shopper.upload_photos(svc, rid, [clean(seed=6), clean(seed=7)])
    assert err.value.code == "too_many_photos" and err.value.details["existing"] == 5
    assert counts(svc) == before
    assert shopper.upload_photos(svc, rid, [clean(seed=6)]).decision.outcome == "approved"  # 6th ok
    with pytest.raises(Invalid) as err:
        shopper.upload_photos(svc, rid, [])
    assert err.value.code == "no_photos"


def test_a_duplicate_upload_is_refused(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc)
    photo = blurry(seed=2)
    with pytest.raises(Conflict) as err:
        shopper.upload_photos(svc, rid, [photo, photo])
    assert err.value.code == "duplicate_upload"
    shopper.upload_photos(svc, rid, [photo])
    before = counts(svc)
    with pytest.raises(Conflict) as err:
        shopper.upload_photos(svc, rid, [photo])
    assert err.value.code == "duplicate_upload" and counts(svc) == before


@pytest.mark.parametrize("key", [None, "key-1"])
def test_each_uploaded_file_is_hashed_once(
    svc: ReturnLensService, monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    """The duplicate check, the idempotency fingerprint, the decode and the photo row all
    read one sha256 per file (a 12 MP JPEG takes ~1.7 ms to hash); the row holds it."""
    rid, _ = new_return(svc)
    photos = [blurry(seed=5), blurry(seed=6)]
    hashed: list[int] = []
    real = hashlib.sha256

    def sha256(data: Any = b"", **kwargs: Any) -> Any:
        hashed.extend(i for i, p in enumerate(photos) if data is p)
        return real(data, **kwargs)

    monkeypatch.setattr(hashlib, "sha256", sha256)
    out = shopper.upload_photos(svc, rid, photos, idempotency_key=key)
    monkeypatch.undo()
    assert sorted(hashed) == [0, 1]
    with svc.db.read() as s:
        stored = {p.id: p.upload_sha256 for p in s.scalars(select(Photo))}
    expected = [hashlib.sha256(p).hexdigest() for p in photos]
    assert [stored[p.photo_id] for p in out.photos] == expected


def test_shopper_tokens_are_scoped_to_one_return(svc: ReturnLensService) -> None:
    rid1, tok1 = new_return(svc, order="o-1")
    rid2, tok2 = new_return(svc, order="o-2")
    shopper.check_shopper_token(svc, rid1, tok1)
    shopper.check_shopper_token(svc, rid2, tok2)
    with pytest.raises(Forbidden):
        shopper.check_shopper_token(svc, rid1, tok2)  # another return's token
    with pytest.raises(Forbidden):
        shopper.check_shopper_token(svc, rid1, tok1[:-1] + ("A" if tok1[-1] != "A" else "B"))
    with pytest.raises(Forbidden):
        shopper.check_shopper_token(svc, "ret_" + "0" * 24, tok1)  # unknown id: no probing
    with pytest.raises(Unauthorized):
        shopper.check_shopper_token(svc, rid1, "")
    with svc.db.read() as s:  # only the hash is stored
        row = s.get(Return, rid1)
        assert row is not None and tok1 not in row.shopper_token_hash
        assert row.shopper_token_hash == hashlib.sha256(tok1.encode()).hexdigest()


def test_create_return_refusals(svc: ReturnLensService) -> None:
    before = counts(svc)
    cases = [
        (("nope", "mug-01"), NotFound, "unknown_order"),
        (("o-2", "box-02"), NotFound, "unknown_sku"),
        (("o-old", "mug-01"), Invalid, "outside_return_window"),
    ]
    for (order_id, sku), cls, code in cases:
        req = CreateReturnRequest(order_id=order_id, sku=sku, reason="changed_mind")
        with pytest.raises(cls) as err:
            shopper.create_return(svc, req)
        assert err.value.code == code, err.value
        assert err.value.message
    with pytest.raises(ValidationError):  # the request model refuses an unknown reason
        CreateReturnRequest(order_id="o-1", sku="mug-01", reason="bored")  # type: ignore[arg-type]
    assert counts(svc) == before


def test_the_order_email_must_match_when_given(svc: ReturnLensService) -> None:
    def request(order_id: str, email: str) -> CreateReturnRequest:
        return CreateReturnRequest(
            order_id=order_id, sku="mug-01", reason="changed_mind", email=email
        )

    ok = shopper.create_return(svc, request("o-1", "  A@Example.COM "))
    assert ok.return_id.startswith("ret_")
    with pytest.raises(NotFound) as err:
        shopper.create_return(svc, request("o-1", "b@example.com"))
    assert err.value.code == "unknown_order"  # the same answer as an unknown order
    with pytest.raises(ValidationError):  # a blank e-mail is no e-mail address at all
        request("o-1", "")
    with pytest.raises(NotFound) as err:  # c-2 has no email on file: never matches
        shopper.create_return(svc, request("o-2", "x@y.z"))
    assert err.value.code == "unknown_order"


def test_stored_photos_are_content_addressed_without_exif(svc: ReturnLensService) -> None:
    upload = jpeg(scene(seed=8), exif=gps_exif())
    assert Image.open(io.BytesIO(upload)).getexif().get(0x8825) is not None  # GPS is there
    rid, _ = new_return(svc)
    photo = shopper.upload_photos(svc, rid, [upload]).photos[0]
    data, media_type = media.photo_bytes(svc, photo.photo_id)
    assert media_type == "image/jpeg"
    digest = hashlib.sha256(data).hexdigest()  # named by the stored bytes, not the upload's
    assert digest != hashlib.sha256(upload).hexdigest()
    assert svc.photos.path(digest).read_bytes() == data
    stored = Image.open(io.BytesIO(data))
    assert len(stored.getexif()) == 0 and "exif" not in stored.info
    assert b"SpyCam" not in data and b"Exif" not in data
    assert stored.size == (640, 480)


def test_the_decision_is_committed_when_upload_returns(svc: ReturnLensService, db_url: str) -> None:
    rid, _ = new_return(svc)
    decision = shopper.upload_photos(svc, rid, [clean(seed=9)]).decision
    other = create_engine(db_url)  # an independent connection pool, not the service's
    try:
        with other.connect() as conn:
            row = conn.execute(
                text("SELECT outcome, return_id FROM decisions WHERE id = :i"),
                {"i": decision.decision_id},
            ).one()
    finally:
        other.dispose()
    assert tuple(row) == ("approved", rid)


# ----------------------------------------------------------------------------- dock
def inspection(key: str, photos: list[bytes], return_id: str | None) -> InspectionRequest:
    return InspectionRequest(
        return_id=return_id, photos=photos, idempotency_key=key, station_id="dock-1"
    )


def test_dock_inspection_grades_prices_and_flags_a_discrepancy(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc)
    assert shopper.upload_photos(svc, rid, [clean(seed=1)]).decision.grade_label == "A_new"
    view = dock.inspect(svc, inspection("k-1", [damaged(seed=2)], rid))
    assert view.status == "matched" and view.return_id == rid and not view.replayed
    assert view.grade == "E_damaged" and view.shopper_grade == "A_new"
    assert view.channel is not None and view.expected_recovery is not None
    assert view.alternatives[0]["channel"] == view.channel
    assert "grade_discrepancy" in {f.code for f in view.flags} and view.needs_review
    queue = review.review_queue(svc)
    assert ("inspection", view.inspection_id) in {(q.subject_type, q.subject_id) for q in queue}
    assert [a.action for a in review.audit_history(svc, "return", rid)][-1] == "dock_inspected"


def test_inspection_idempotency_replay_and_conflict(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc)
    photos = [clean(seed=1)]
    first = dock.inspect(svc, inspection("k-2", photos, rid))
    before = counts(svc)
    again = dock.inspect(svc, inspection("k-2", photos, rid))
    assert again.replayed and again.inspection_id == first.inspection_id
    assert again.grade == first.grade and again.photo_ids == first.photo_ids
    assert counts(svc) == before
    for other in (inspection("k-2", [clean(seed=2)], rid), inspection("k-2", photos, None)):
        with pytest.raises(Conflict) as err:
            dock.inspect(svc, other)
        assert err.value.code == "idempotency_conflict"
    assert counts(svc) == before


def test_concurrent_inspections_with_one_key_store_one_row(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc)
    req = inspection("k-race", [clean(seed=3)], rid)
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(dock.inspect(svc, req))
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(not isinstance(r, Exception) for r in results), results
    assert len({r.inspection_id for r in results}) == 1
    assert sorted(r.replayed for r in results) == [False, True]
    with svc.db.read() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(Inspection)
                .where(Inspection.idempotency_key == "k-race")
            )
            == 1
        )


def test_get_inspection_and_a_new_reference_photo(svc: ReturnLensService) -> None:
    view = dock.inspect(svc, inspection("k-5", [clean(seed=6)], None))
    got = dock.get_inspection(svc, view.inspection_id)
    assert got.inspection_id == view.inspection_id and not got.replayed
    with pytest.raises(NotFound) as err:
        dock.get_inspection(svc, "ins_nope")
    assert err.value.code == "unknown_inspection"
    admin.set_reference_photo(svc, "mug-01", clean(seed=0, corner="br"))  # the mug now sits br
    rid, _ = new_return(svc)
    assert (
        shopper.upload_photos(svc, rid, [clean(seed=7, corner="br")]).decision.outcome == "approved"
    )
    with svc.db.read() as s:
        item = s.get(CatalogItem, "mug-01")
        assert item is not None and item.reference_digest is not None
    assert hashlib.sha256(svc.photos.get(item.reference_digest)).hexdigest() == (
        item.reference_digest
    )
    with pytest.raises(NotFound):
        admin.set_reference_photo(svc, "nope", clean())


def test_unmatched_inspections_are_stored_for_review(svc: ReturnLensService) -> None:
    none = dock.inspect(svc, inspection("k-3", [clean(seed=4)], None))
    ghost = dock.inspect(svc, inspection("k-4", [clean(seed=5)], "ret_doesnotexist"))
    assert none.status == ghost.status == "unmatched"
    assert none.return_id is None and ghost.claimed_return_id == "ret_doesnotexist"
    assert [f.code for f in none.flags] == ["no_return_label"]
    assert [f.code for f in ghost.flags] == ["unknown_return"]
    assert none.needs_review and none.channel is None and none.grade == "A_new"
    queued = {q.subject_id for q in review.review_queue(svc, sort="value")}
    assert {none.inspection_id, ghost.inspection_id} <= queued


# ----------------------------------------------------------------------------- review
def test_a_review_is_stored_as_a_training_label(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc)
    upload = shopper.upload_photos(svc, rid, [damaged(seed=6)])
    assert upload.decision.outcome == "needs_review"
    assert rid in {q.subject_id for q in review.review_queue(svc)}
    with pytest.raises(Invalid) as err:
        review.submit_review(
            svc,
            ReviewRequest(subject_type="return", subject_id=rid, verdict="correct", grade="Z_bad"),
            reviewer="ana",
        )
    assert err.value.code == "invalid_label"
    with pytest.raises(NotFound):
        review.submit_review(
            svc,
            ReviewRequest(subject_type="return", subject_id="ret_nope", verdict="approve"),
            reviewer="ana",
        )
    with pytest.raises(ValidationError):  # a correction must say what it corrects
        ReviewRequest(subject_type="return", subject_id=rid, verdict="correct")
    stored = review.submit_review(
        svc,
        ReviewRequest(
            subject_type="return",
            subject_id=rid,
            verdict="correct",
            grade="D_fair",
            damage=["crack", "scratch"],
            note="hairline",
        ),
        reviewer="ana",
    )
    assert stored.grade == "D_fair" and stored.damage == ["crack", "scratch"]
    assert stored.reviewer == "ana" and stored.created_at == NOW
    assert shopper.get_return(svc, rid).status == "reviewed"
    assert rid not in {q.subject_id for q in review.review_queue(svc)}
    with svc.db.read() as s:
        row = s.get(Review, stored.review_id)
        assert row is not None and row.model_version == "test-0.1"
        assert row.photo_ids == [upload.photos[0].photo_id]
        reviews = s.scalars(select(Review).where(Review.subject_id == rid)).all()
        assert [r.id for r in reviews] == [stored.review_id]
    assert review.audit_history(svc, "return", rid)[-1].action == "reviewed"


# ----------------------------------------------------------------------------- admin
def test_api_keys_are_stored_hashed(svc: ReturnLensService) -> None:
    key = admin.create_api_key(svc, ApiKeyRequest(name="dock-a", role="dock"))
    assert admin.authenticate_key(svc, key) == ("dock-a", "dock")
    assert (
        admin.authenticate_key(svc, key + "x") is None and admin.authenticate_key(svc, "") is None
    )
    with svc.db.read() as s:
        hashes = [r[0] for r in s.execute(text("SELECT key_hash FROM api_keys")).all()]
    assert key not in hashes and hashlib.sha256(key.encode()).hexdigest() in hashes
    with pytest.raises(Conflict):
        admin.create_api_key(svc, ApiKeyRequest(name="dock-a", role="reviewer"))
    with pytest.raises(ValidationError):
        ApiKeyRequest(name="x", role="root")  # type: ignore[arg-type]
    admin.revoke_api_key(svc, "dock-a")
    assert admin.authenticate_key(svc, key) is None
