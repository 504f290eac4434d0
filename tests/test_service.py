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
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, func, select, text

from benchmarks.tiny_model import build_test_model
from serving.domain_errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from serving.policy import load_policy
from serving.services.service import ReturnLensService
from serving.services.views import CreateReturnRequest, InspectionRequest, ReviewRequest
from serving.storage.db import Database
from serving.storage.photostore import PhotoStore
from serving.storage.tables import (
    AuditLog,
    Decision,
    Grading,
    Inspection,
    Photo,
    Return,
    Review,
)
from tests.pg import db_url, pg_cluster  # noqa: F401  (fixtures)
from vision.errors import DecodeError
from vision.model import OnnxModel
from vision.pipeline import Grader

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DELIVERED = NOW - timedelta(days=9)
NEUTRAL_BG, NEUTRAL_ITEM = (176, 172, 168), (86, 88, 92)
RED_BG, RED_ITEM = (232, 34, 30), (128, 22, 20)


# ----------------------------------------------------------------------------- photos
def scene(
    *,
    corner: str = "tl",
    bg: tuple[int, int, int] = NEUTRAL_BG,
    item: tuple[int, int, int] = NEUTRAL_ITEM,
    seed: int = 0,
    blur: float = 0.0,
    size: tuple[int, int] = (640, 480),
) -> np.ndarray:
    """An item (a textured rectangle) in one quadrant of a plain table, 640x480 RGB.

    ``seed`` moves a few large light/dark patches on the item: a different perceptual hash
    (low frequencies) without moving the item, so distinct photos are not "reused".
    """
    w, h = size
    img = np.empty((h, w, 3), np.float32)
    img[:] = bg
    x0 = int(w * (0.05 if corner in ("tl", "bl") else 0.5))
    y0 = int(h * (0.05 if corner in ("tl", "tr") else 0.5))
    iw, ih = int(w * 0.45), int(h * 0.45)
    yy, xx = np.mgrid[0:ih, 0:iw]
    checker = np.where(((yy // 12) + (xx // 12)) % 2 == 0, 1.0, -1.0)[..., None]
    patch = np.asarray(item, np.float32) * (1.0 + 0.18 * checker)
    rng = np.random.default_rng(seed)
    for _ in range(3 if seed else 0):
        px, py = rng.integers(0, iw - iw // 3), rng.integers(0, ih - ih // 3)
        patch[py : py + ih // 3, px : px + iw // 3] *= rng.choice([0.55, 1.45])
    img[y0 : y0 + ih, x0 : x0 + iw] = patch
    out = np.clip(img, 0, 255).astype(np.uint8)
    return np.asarray(cv2.GaussianBlur(out, (0, 0), blur), np.uint8) if blur else out


def jpeg(rgb: np.ndarray, *, exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"quality": 92}
    if exif is not None:
        kwargs["exif"] = exif
    Image.fromarray(rgb).save(buf, format="JPEG", **kwargs)
    return buf.getvalue()


def clean(seed: int = 0, corner: str = "tl") -> bytes:
    return jpeg(scene(seed=seed, corner=corner))


def damaged(seed: int = 0, corner: str = "tl") -> bytes:
    return jpeg(scene(seed=seed, corner=corner, bg=RED_BG, item=RED_ITEM))


def blurry(seed: int = 0) -> bytes:
    return jpeg(scene(seed=seed, blur=9.0))


def gps_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Inc."  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}  # GPSInfo
    return exif.tobytes()


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> OnnxModel:
    path = build_test_model(tmp_path_factory.mktemp("model") / "test.onnx")
    return OnnxModel(path, intra_op_threads=1)


@pytest.fixture()
def svc(db_url: str, tmp_path: Path, model: OnnxModel) -> Iterator[ReturnLensService]:  # noqa: F811
    db = Database(db_url)
    service = ReturnLensService(
        db,
        PhotoStore(tmp_path / "photos"),
        Grader(model),
        Grader(model, profile="dock"),
        load_policy(),
        clock=lambda: NOW,
    )
    service.upsert_catalog(
        [
            {
                "sku": "mug-01",
                "category": "mug",
                "name": "Mug",
                "price": 25.0,
                "reference_photo": clean(seed=0, corner="tl"),
            },
            {
                "sku": "box-02",
                "category": "package",
                "name": "Box",
                "price": 40.0,
                "reference_photo": clean(seed=0, corner="br"),
            },
        ]
    )
    service.upsert_orders(
        [
            {
                "order_id": "o-1",
                "customer_id": "c-1",
                "customer_email": "a@example.com",
                "sku": "mug-01",
                "price": 25.0,
                "delivered_at": DELIVERED,
            },
            {
                "order_id": "o-1",
                "customer_id": "c-1",
                "sku": "box-02",
                "price": 40.0,
                "delivered_at": DELIVERED,
            },
            {
                "order_id": "o-2",
                "customer_id": "c-2",
                "sku": "mug-01",
                "price": 25.0,
                "delivered_at": DELIVERED.isoformat(),
            },
            {
                "order_id": "o-old",
                "customer_id": "c-2",
                "sku": "mug-01",
                "price": 25.0,
                "delivered_at": "2025-11-01T10:00:00Z",
            },
        ]
    )
    yield service
    db.dispose()


def new_return(
    svc: ReturnLensService, order: str = "o-1", sku: str = "mug-01", reason: str = "changed_mind"
) -> tuple[str, str]:
    created = svc.create_return(CreateReturnRequest(order_id=order, sku=sku, reason=reason))
    return created.return_id, created.token


def counts(svc: ReturnLensService) -> dict[str, int]:
    with svc.db.read() as s:
        return {
            t.__tablename__: int(s.scalar(select(func.count()).select_from(t)) or 0)
            for t in (Return, Photo, Grading, Decision, Inspection, Review, AuditLog)
        }


def stored_files(svc: ReturnLensService) -> list[Path]:
    return sorted(p for p in svc.deps.photos.root.rglob("*.jpg"))


# ----------------------------------------------------------------------------- shopper
def test_create_upload_get_round_trip(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc)
    result = svc.upload_photos(rid, [clean(seed=1)])
    d = result.decision
    assert d.outcome == "approved", d.flags
    assert d.grade == "A_new" and d.confidence is not None and d.confidence > 0.8
    assert d.model_version == "test-0.1" and d.policy_version == svc.policy.version
    assert d.shopper_message and d.sequence == 1
    assert len(result.photos) == 1 and result.photos[0].quality["passed"] is True
    assert result.photos[0].heatmap_labels[0] == "grade"
    view = svc.get_return(rid)
    assert view.status == "approved" and view.category == "mug"
    assert [x.decision_id for x in view.decisions] == [d.decision_id]
    assert [p.photo_id for p in view.photos] == [p.photo_id for p in result.photos]
    assert view.decisions[0].grade_probs == d.grade_probs
    actions = [a["action"] for a in svc.audit_history("return", rid)]
    assert actions == ["return_created", "photos_uploaded"]
    png = svc.heatmap_png(result.photos[0].photo_id, "crack")
    overlay = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert overlay is not None and overlay.shape[:2] == (480, 640)
    with pytest.raises(Conflict) as err:  # approved: nothing more to upload
        svc.upload_photos(rid, [clean(seed=2)])
    assert err.value.code == "already_decided"


def test_blurry_photo_asks_for_a_retake_and_a_retake_adds_a_decision(
    svc: ReturnLensService,
) -> None:
    rid, _ = new_return(svc)
    first = svc.upload_photos(rid, [blurry(seed=1)])
    assert first.decision.outcome == "retake"
    assert "blur" in {c["name"] for c in first.photos[0].quality["checks"] if not c["passed"]}
    second = svc.upload_photos(rid, [clean(seed=1)])
    assert second.decision.outcome == "approved" and second.decision.sequence == 2
    view = svc.get_return(rid)
    assert [d.outcome for d in view.decisions] == ["retake", "approved"]
    assert len(view.photos) == 2


def test_damaged_item_with_changed_mind_needs_review(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc, reason="changed_mind")
    d = svc.upload_photos(rid, [damaged(seed=1)]).decision
    assert d.outcome == "needs_review"
    assert d.grade == "E_damaged" and d.damage_probs["crack"] > 0.9
    codes = {f["code"] for f in d.flags}
    assert "reason_condition_mismatch" in codes or "non_returnable_condition" in codes


def test_wrong_item_is_flagged_from_the_reference_embedding(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc, sku="mug-01")  # the mug's reference sits top-left
    d = svc.upload_photos(rid, [clean(seed=3, corner="br")]).decision
    assert d.outcome == "needs_review"
    flag = next(f for f in d.flags if f["code"] == "wrong_item")
    assert flag["evidence"]["similarity"] < 0.5
    rid2, _ = new_return(svc, sku="box-02")  # the box's reference sits bottom-right
    assert svc.upload_photos(rid2, [clean(seed=4, corner="br")]).decision.outcome == "approved"


def test_a_photo_reused_from_another_return_is_detected(svc: ReturnLensService) -> None:
    photo = clean(seed=5)
    rid1, _ = new_return(svc, order="o-1")
    first = svc.upload_photos(rid1, [photo])
    assert first.decision.outcome == "approved"
    rid2, _ = new_return(svc, order="o-2")
    d = svc.upload_photos(rid2, [photo]).decision
    flag = next(f for f in d.flags if f["code"] == "reused_photo")
    assert flag["evidence"]["other_return_id"] == rid1
    assert flag["evidence"]["other_photo_id"] == first.photos[0].photo_id
    assert flag["evidence"]["distance"] == 0 and d.outcome == "needs_review"


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
            svc.upload_photos(rid, [good, bad])
        assert err.value.code == code
    with pytest.raises(DecodeError):  # the dock refuses the same way
        svc.inspect(inspection("k-bad", [good, good[:500]], rid))
    assert counts(svc) == before and stored_files(svc) == files
    assert svc.get_return(rid).status == "awaiting_photos"


def test_concurrent_uploads_to_one_return_never_half_store(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc)
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def run(seed: int) -> None:
        barrier.wait()
        try:
            results.append(svc.upload_photos(rid, [blurry(seed=seed)]))
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
    view = svc.get_return(rid)
    assert [d.sequence for d in view.decisions] == list(range(1, len(done) + 1))
    assert len(view.photos) == len(done) == counts(svc)["gradings"]


def test_a_seventh_photo_is_refused(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc)
    with pytest.raises(Invalid) as err:
        svc.upload_photos(rid, [blurry(seed=i) for i in range(1, 8)])
    assert err.value.code == "too_many_photos"
    assert (
        svc.upload_photos(rid, [blurry(seed=i) for i in range(1, 6)]).decision.outcome == "retake"
    )
    before = counts(svc)
    with pytest.raises(Invalid) as err:
        svc.upload_photos(rid, [clean(seed=6), clean(seed=7)])
    assert err.value.code == "too_many_photos" and err.value.details["existing"] == 5
    assert counts(svc) == before
    assert svc.upload_photos(rid, [clean(seed=6)]).decision.outcome == "approved"  # 6th ok
    with pytest.raises(Invalid) as err:
        svc.upload_photos(rid, [])
    assert err.value.code == "no_photos"


def test_a_duplicate_upload_is_refused(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc)
    photo = blurry(seed=2)
    with pytest.raises(Conflict) as err:
        svc.upload_photos(rid, [photo, photo])
    assert err.value.code == "duplicate_upload"
    svc.upload_photos(rid, [photo])
    before = counts(svc)
    with pytest.raises(Conflict) as err:
        svc.upload_photos(rid, [photo])
    assert err.value.code == "duplicate_upload" and counts(svc) == before


def test_shopper_tokens_are_scoped_to_one_return(svc: ReturnLensService) -> None:
    rid1, tok1 = new_return(svc, order="o-1")
    rid2, tok2 = new_return(svc, order="o-2")
    svc.check_shopper_token(rid1, tok1)
    svc.check_shopper_token(rid2, tok2)
    with pytest.raises(Forbidden):
        svc.check_shopper_token(rid1, tok2)  # another return's token
    with pytest.raises(Forbidden):
        svc.check_shopper_token(rid1, tok1[:-1] + ("A" if tok1[-1] != "A" else "B"))
    with pytest.raises(Forbidden):
        svc.check_shopper_token("ret_" + "0" * 24, tok1)  # unknown id: no probing
    with pytest.raises(Unauthorized):
        svc.check_shopper_token(rid1, "")
    with svc.db.read() as s:  # only the hash is stored
        row = s.get(Return, rid1)
        assert row is not None and tok1 not in row.shopper_token_hash
        assert row.shopper_token_hash == hashlib.sha256(tok1.encode()).hexdigest()


def test_create_return_refusals(svc: ReturnLensService) -> None:
    before = counts(svc)
    cases = [
        (CreateReturnRequest("nope", "mug-01", "changed_mind"), NotFound, "unknown_order"),
        (CreateReturnRequest("o-2", "box-02", "changed_mind"), NotFound, "unknown_sku"),
        (CreateReturnRequest("o-1", "mug-01", "bored"), Invalid, "invalid_reason"),
        (CreateReturnRequest("o-old", "mug-01", "changed_mind"), Invalid, "outside_return_window"),
    ]
    for req, cls, code in cases:
        with pytest.raises(cls) as err:
            svc.create_return(req)
        assert err.value.code == code, err.value
        assert err.value.message
    assert counts(svc) == before


def test_the_order_email_must_match_when_given(svc: ReturnLensService) -> None:
    ok = svc.create_return(
        CreateReturnRequest("o-1", "mug-01", "changed_mind", email="  A@Example.COM ")
    )
    assert ok.return_id.startswith("ret_")
    for email in ("b@example.com", ""):
        with pytest.raises(NotFound) as err:
            svc.create_return(CreateReturnRequest("o-1", "mug-01", "changed_mind", email=email))
        assert err.value.code == "unknown_order"  # the same answer as an unknown order
    with pytest.raises(NotFound) as err:  # c-2 has no email on file: never matches
        svc.create_return(CreateReturnRequest("o-2", "mug-01", "changed_mind", email="x@y.z"))
    assert err.value.code == "unknown_order"


def test_stored_photos_are_content_addressed_without_exif(svc: ReturnLensService) -> None:
    upload = jpeg(scene(seed=8), exif=gps_exif())
    assert Image.open(io.BytesIO(upload)).getexif().get(0x8825) is not None  # GPS is there
    rid, _ = new_return(svc)
    photo = svc.upload_photos(rid, [upload]).photos[0]
    data, media_type = svc.photo_bytes(photo.photo_id)
    assert media_type == "image/jpeg"
    assert hashlib.sha256(data).hexdigest() == photo.digest != hashlib.sha256(upload).hexdigest()
    assert svc.deps.photos.path(photo.digest).read_bytes() == data
    stored = Image.open(io.BytesIO(data))
    assert len(stored.getexif()) == 0 and "exif" not in stored.info
    assert b"SpyCam" not in data and b"Exif" not in data
    assert stored.size == (640, 480)


def test_the_decision_is_committed_when_upload_returns(svc: ReturnLensService, db_url: str) -> None:  # noqa: F811
    rid, _ = new_return(svc)
    decision = svc.upload_photos(rid, [clean(seed=9)]).decision
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
    assert svc.upload_photos(rid, [clean(seed=1)]).decision.grade == "A_new"
    view = svc.inspect(inspection("k-1", [damaged(seed=2)], rid))
    assert view.status == "matched" and view.return_id == rid and not view.replayed
    assert view.grade == "E_damaged" and view.shopper_grade == "A_new"
    assert view.channel is not None and view.expected_recovery is not None
    assert view.alternatives[0]["channel"] == view.channel
    assert "grade_discrepancy" in {f["code"] for f in view.flags} and view.needs_review
    queue = svc.review_queue()
    assert ("inspection", view.inspection_id) in {(q.subject_type, q.subject_id) for q in queue}
    assert [a["action"] for a in svc.audit_history("return", rid)][-1] == "dock_inspected"


def test_inspection_idempotency_replay_and_conflict(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc)
    photos = [clean(seed=1)]
    first = svc.inspect(inspection("k-2", photos, rid))
    before = counts(svc)
    again = svc.inspect(inspection("k-2", photos, rid))
    assert again.replayed and again.inspection_id == first.inspection_id
    assert again.grade == first.grade and again.photo_ids == first.photo_ids
    assert counts(svc) == before
    for other in (inspection("k-2", [clean(seed=2)], rid), inspection("k-2", photos, None)):
        with pytest.raises(Conflict) as err:
            svc.inspect(other)
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
            results.append(svc.inspect(req))
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
    view = svc.inspect(inspection("k-5", [clean(seed=6)], None))
    got = svc.get_inspection(view.inspection_id)
    assert got.inspection_id == view.inspection_id and not got.replayed
    with pytest.raises(NotFound) as err:
        svc.get_inspection("ins_nope")
    assert err.value.code == "unknown_inspection"
    svc.set_reference_photo("mug-01", clean(seed=0, corner="br"))  # the mug now sits br
    rid, _ = new_return(svc)
    assert svc.upload_photos(rid, [clean(seed=7, corner="br")]).decision.outcome == "approved"
    data, _ = svc.catalog_reference("mug-01")
    assert hashlib.sha256(data).hexdigest() == next(
        c["reference_digest"] for c in svc.list_catalog() if c["sku"] == "mug-01"
    )
    with pytest.raises(NotFound):
        svc.set_reference_photo("nope", clean())


def test_unmatched_inspections_are_stored_for_review(svc: ReturnLensService) -> None:
    none = svc.inspect(inspection("k-3", [clean(seed=4)], None))
    ghost = svc.inspect(inspection("k-4", [clean(seed=5)], "ret_doesnotexist"))
    assert none.status == ghost.status == "unmatched"
    assert none.return_id is None and ghost.claimed_return_id == "ret_doesnotexist"
    assert [f["code"] for f in none.flags] == ["no_return_label"]
    assert [f["code"] for f in ghost.flags] == ["unknown_return"]
    assert none.needs_review and none.channel is None and none.grade == "A_new"
    queued = {q.subject_id for q in svc.review_queue(sort="value")}
    assert {none.inspection_id, ghost.inspection_id} <= queued


# ----------------------------------------------------------------------------- review
def test_a_review_is_stored_as_a_training_label(svc: ReturnLensService) -> None:
    rid, _ = new_return(svc)
    upload = svc.upload_photos(rid, [damaged(seed=6)])
    assert upload.decision.outcome == "needs_review"
    assert rid in {q.subject_id for q in svc.review_queue()}
    with pytest.raises(Invalid) as err:
        svc.submit_review(ReviewRequest("return", rid, "ana", "correct", grade="Z_bad"))
    assert err.value.code == "invalid_label"
    with pytest.raises(NotFound):
        svc.submit_review(ReviewRequest("return", "ret_nope", "ana", "approve"))
    review = svc.submit_review(
        ReviewRequest(
            "return",
            rid,
            "ana",
            "correct",
            grade="D_fair",
            damage=("crack", "scratch"),
            note="hairline",
        )
    )
    assert review.grade == "D_fair" and review.damage == ("crack", "scratch")
    assert review.created_at == NOW
    assert svc.get_return(rid).status == "reviewed"
    assert rid not in {q.subject_id for q in svc.review_queue()}
    with svc.db.read() as s:
        row = s.get(Review, review.review_id)
        assert row is not None and row.model_version == "test-0.1"
        assert row.photo_ids == [upload.photos[0].photo_id]
    assert svc.audit_history("return", rid)[-1]["action"] == "reviewed"
    assert [r.review_id for r in svc.reviews_for("return", rid)] == [review.review_id]


# ----------------------------------------------------------------------------- admin
def test_api_keys_are_stored_hashed(svc: ReturnLensService) -> None:
    key = svc.create_api_key("dock-a", "dock")
    assert svc.authenticate_key(key) == ("dock-a", "dock")
    assert svc.authenticate_key(key + "x") is None and svc.authenticate_key("") is None
    with svc.db.read() as s:
        hashes = [r[0] for r in s.execute(text("SELECT key_hash FROM api_keys")).all()]
    assert key not in hashes and hashlib.sha256(key.encode()).hexdigest() in hashes
    with pytest.raises(Conflict):
        svc.create_api_key("dock-a", "reviewer")
    with pytest.raises(Invalid):
        svc.create_api_key("x", "root")
    svc.revoke_api_key("dock-a")
    assert svc.authenticate_key(key) is None
