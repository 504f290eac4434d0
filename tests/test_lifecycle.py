"""A return's life as a state machine (``serving.services.lifecycle``), on SQLite and
PostgreSQL with the tiny model: transitions through the shopper, reviewer and dock
paths, refusals of illegal ones, the dock's consistency flags, the shopper's status
sentence after a verdict, and the timeline (shopper and staff views)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from serving.domain_errors import Conflict
from serving.services import dock, lifecycle, review, shopper
from serving.services.inputs import CreateReturnRequest, InspectionRequest, ReviewRequest
from serving.services.records import InspectionOut
from serving.services.service import ReturnLensService
from serving.storage.tables import OutboxDelivery, OutboxEvent
from tests.service_data import clean, damaged
from tests.shop import Shop, jpeg, scene


def new_return(svc: ReturnLensService, order: str = "o-1", sku: str = "mug-01") -> str:
    req = CreateReturnRequest(order_id=order, sku=sku, reason="changed_mind")
    return shopper.create_return(svc, req).return_id


def approved_return(svc: ReturnLensService) -> str:
    rid = new_return(svc)
    assert shopper.upload_photos(svc, rid, [clean(seed=1)]).decision.outcome == "approved"
    return rid


def verdict(
    svc: ReturnLensService, rid: str, kind: str, note: str | None = None, grade: str | None = None
) -> None:
    req = ReviewRequest.model_validate(
        {"subject_type": "return", "subject_id": rid, "verdict": kind, "note": note, "grade": grade}
    )
    review.submit_review(svc, req, reviewer="rita")


def inspect(svc: ReturnLensService, key: str, rid: str, photo: bytes) -> InspectionOut:
    req = InspectionRequest(return_id=rid, photos=[photo], idempotency_key=key, station_id="d-1")
    return dock.inspect(svc, req)


def test_every_transition_names_a_known_status() -> None:
    for source, targets in lifecycle.TRANSITIONS.items():
        assert source in lifecycle.STATUSES and source in lifecycle.SENTENCES
        assert targets <= set(lifecycle.STATUSES), source
    assert lifecycle.TRANSITIONS["closed"] == frozenset()


@pytest.mark.parametrize(
    ("current", "target"),
    [("awaiting_photos", "received"), ("received", "approved"), ("closed", "resolved")],
)
def test_an_illegal_transition_is_a_409_naming_both_statuses(current: str, target: str) -> None:
    with pytest.raises(Conflict) as err:
        lifecycle.check_transition("ret_x", current, target)
    assert err.value.code == "illegal_transition"
    assert current in err.value.message and target in err.value.message
    assert err.value.details["allowed"] == sorted(lifecycle.TRANSITIONS[current])


def test_the_dock_moves_an_approved_return_to_resolved(svc: ReturnLensService) -> None:
    """Routed with nothing for a person to check: dispositioned, then settled."""
    rid = approved_return(svc)
    view = inspect(svc, "k-1", rid, clean(seed=2))
    assert view.channel is not None and not view.needs_review
    ret = shopper.get_return(svc, rid)
    assert ret.status == "resolved"
    assert [e.status for e in ret.timeline] == [
        "awaiting_photos", "approved", "received", "graded", "dispositioned", "resolved"
    ]  # fmt: skip
    assert [e.by for e in ret.timeline] == ["shopper", "shopper", "dock", "dock", "dock", "dock"]
    staff = shopper.staff_timeline(svc, rid)[:-1]  # the last: the resolution
    assert (
        staff[-1].actor == "station:d-1"
        and staff[-1].details["inspection_id"] == view.inspection_id
    )
    assert staff[1].details["decision_id"] == ret.decisions[-1].decision_id


def test_a_second_inspection_is_flagged_already_inspected(svc: ReturnLensService) -> None:
    rid = approved_return(svc)
    inspect(svc, "k-1", rid, clean(seed=2))
    again = inspect(svc, "k-2", rid, clean(seed=3))
    codes = {f.code for f in again.flags}
    assert "already_inspected" in codes and again.needs_review
    assert again.channel is None and again.expected_recovery is None
    assert shopper.get_return(svc, rid).status == "resolved"  # unchanged
    queue = {(q.subject_type, q.subject_id) for q in review.review_queue(svc)}
    assert ("inspection", again.inspection_id) in queue


def test_a_return_not_approved_is_flagged_at_the_dock(svc: ReturnLensService) -> None:
    rid = new_return(svc)  # no photos yet: never approved
    view = inspect(svc, "k-1", rid, clean(seed=2))
    flag = next(f for f in view.flags if f.code == "not_pre_approved")
    assert "awaiting_photos" in flag.message and view.needs_review and view.channel is None
    assert shopper.get_return(svc, rid).status == "awaiting_photos"


def test_a_reviewer_rejecting_after_auto_approval_reaches_the_shopper(
    svc: ReturnLensService,
) -> None:
    rid = approved_return(svc)
    before = shopper.get_return(svc, rid)
    assert before.status_message == before.decisions[-1].message
    verdict(svc, rid, "reject", note="photo is of another mug")
    after = shopper.get_return(svc, rid)
    assert after.status == "rejected"
    assert after.status_message == lifecycle.REVOKED
    assert after.timeline[-1].status == "rejected" and after.timeline[-1].by == "reviewer"
    staff = shopper.staff_timeline(svc, rid)
    assert staff[-1].actor == "reviewer:rita" and staff[-1].why == "photo is of another mug"
    assert staff[-1].previous == "approved"


def test_a_review_of_a_needs_review_return_says_what_the_team_decided(
    svc: ReturnLensService,
) -> None:
    rid = new_return(svc)
    assert shopper.upload_photos(svc, rid, [damaged(seed=3)]).decision.outcome == "needs_review"
    verdict(svc, rid, "correct", grade="A_new")  # worth sending back: no keep-it
    ret = shopper.get_return(svc, rid)
    assert ret.status == "reviewed"
    assert ret.status_message == lifecycle.REVIEW_SENTENCES["reviewed"]


def test_a_verdict_after_the_parcel_arrived_is_refused(svc: ReturnLensService) -> None:
    rid = approved_return(svc)
    inspect(svc, "k-1", rid, clean(seed=2))
    with pytest.raises(Conflict) as err:
        verdict(svc, rid, "reject")
    assert err.value.code == "illegal_transition"
    assert "resolved" in err.value.message
    assert shopper.get_return(svc, rid).status == "resolved"


def test_over_http_illegal_verdicts_are_409_and_timelines_are_served(shop: Shop) -> None:
    rid, token = shop.open_return()
    assert shop.upload(rid, token, jpeg(scene(1, "box"))).json()["decision"]["outcome"] == (
        "approved"
    )
    photos = [("photos", ("dock.jpg", jpeg(scene(12, "box")), "image/jpeg"))]
    dock_headers = {**shop.headers("dock"), "Idempotency-Key": "station-1:0001"}
    got = shop.client.post(
        "/v1/dock/inspections", files=photos, data={"return_id": rid}, headers=dock_headers
    )
    assert got.status_code == 201, got.text
    reviewer = shop.headers("reviewer")
    refused = shop.client.post(
        "/v1/review/verdicts",
        headers=reviewer,
        json={"subject_type": "return", "subject_id": rid, "verdict": "reject"},
    )
    assert refused.status_code == 409 and refused.json()["code"] == "illegal_transition"
    assert refused.json()["details"]["status"] == "resolved"
    shopper_view = shop.client.get(
        f"/v1/returns/{rid}", headers={"Authorization": f"Bearer {token}"}
    )
    assert shopper_view.status_code == 200
    statuses = [e["status"] for e in shopper_view.json()["timeline"]]
    assert statuses[-4:] == ["received", "graded", "dispositioned", "resolved"]
    assert all("actor" not in e for e in shopper_view.json()["timeline"])  # no staff names
    staff = shop.client.get(f"/v1/review/returns/{rid}/timeline", headers=reviewer)
    assert staff.status_code == 200 and staff.json()[-1]["actor"].startswith("station:")
    assert shop.client.get(f"/v1/review/returns/{rid}/timeline").status_code == 401
    missing = shop.client.get("/v1/review/returns/ret_nope/timeline", headers=reviewer)
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_return"


def test_every_change_is_an_outbox_event_in_the_same_transaction(svc: ReturnLensService) -> None:
    """The shop's systems hear of each step: the events are written with the changes."""
    rid = approved_return(svc)
    verdict(svc, rid, "reject", note="internal: photo of another mug")
    with svc.db.read() as s:
        rows = s.scalars(  # a delivery's id increases with creation: the send order
            select(OutboxEvent)
            .join(OutboxDelivery, OutboxDelivery.event_id == OutboxEvent.id)
            .where(OutboxEvent.return_id == rid, OutboxDelivery.channel == "webhook")
            .order_by(OutboxDelivery.id)
        ).all()
        events = [(r.type, dict(r.payload)) for r in rows]
    types = [t for t, _ in events]
    assert types[0] == "return.created" and types[-1] == "review.verdict"
    moves = [p["to"] for t, p in events if t == "return.status_changed"]
    assert moves == ["approved", "rejected"]
    # the decision's event follows the move it made; the rejection precedes the verdict
    assert types.index("decision.made") > types.index("return.status_changed")
    assert events[-2][0] == "return.status_changed" and events[-2][1]["to"] == "rejected"
    verdict_payload = events[-1][1]
    assert verdict_payload["message"] == lifecycle.REVOKED  # the shopper's sentence
    assert "internal" not in str(verdict_payload)  # the reviewer's note stays in-house


def test_a_finished_return_is_closed_by_a_person_and_an_open_one_is_not(shop: Shop) -> None:
    reviewer = shop.headers("reviewer")
    rid, token = shop.open_return()
    early = shop.client.post(
        f"/v1/review/returns/{rid}/close", json={"reason": "done"}, headers=reviewer
    )
    assert early.status_code == 409 and early.json()["code"] == "illegal_transition"
    assert "awaiting_photos" in early.json()["message"]
    shop.upload(rid, token, jpeg(scene(1, "box")))
    rejected = shop.client.post(
        "/v1/review/verdicts",
        headers=reviewer,
        json={"subject_type": "return", "subject_id": rid, "verdict": "reject"},
    )
    assert rejected.status_code == 201, rejected.text
    bad = shop.client.post(f"/v1/review/returns/{rid}/close", json={}, headers=reviewer)
    assert bad.status_code == 422
    closed = shop.client.post(
        f"/v1/review/returns/{rid}/close", json={"reason": "customer told"}, headers=reviewer
    )
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    staff = shop.client.get(f"/v1/review/returns/{rid}/timeline", headers=reviewer).json()
    assert staff[-1]["status"] == "closed" and staff[-1]["why"] == "customer told"
    assert (
        shop.client.post(f"/v1/review/returns/{rid}/close", json={"reason": "x"}).status_code == 401
    )
