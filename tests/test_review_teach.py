"""The review queue's ``teach`` order (label value + random slice) and reviewer
agreement per grade (GET /v1/review/stats), on SQLite and PostgreSQL.

Rows are written through the service; where a test needs controlled scores it then
edits the stored decision's confidence and flags (and an order line's price) directly,
and the 200-item queue is one graded inspection copied row by row (no re-grading).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from sqlalchemy import select, update

from serving.services import dock, review, shopper
from serving.services.fields import SubjectType
from serving.services.inputs import CreateReturnRequest, InspectionRequest, ReviewRequest
from serving.services.review_order import ReviewOrder, interleave
from serving.services.review_stats import review_stats
from serving.services.service import ReturnLensService
from serving.storage.tables import Decision, Inspection, OrderLine
from tests.service_data import clean, damaged
from tests.shop import Shop


def _queued_return(svc: ReturnLensService, sku: str, seed: int) -> str:
    rid = shopper.create_return(
        svc, CreateReturnRequest(order_id="o-1", sku=sku, reason="changed_mind")
    ).return_id
    assert shopper.upload_photos(svc, rid, [damaged(seed=seed)]).decision.outcome == "needs_review"
    return rid


def _inspect(svc: ReturnLensService, key: str, seed: int) -> str:
    req = InspectionRequest(
        return_id=None, photos=[clean(seed=seed)], idempotency_key=key, station_id="d"
    )
    return dock.inspect(svc, req).inspection_id


def test_teach_puts_an_uncertain_unfamiliar_expensive_item_first(svc: ReturnLensService) -> None:
    svc.review_order = dataclasses.replace(svc.review_order, random_fraction=0.0)
    cheap = _queued_return(svc, "mug-01", seed=3)
    dear = _queued_return(svc, "box-02", seed=4)
    with svc.db.write() as s:
        s.execute(update(Decision).where(Decision.return_id == cheap).values(confidence=0.99))
        d = s.scalars(select(Decision).where(Decision.return_id == dear)).one()
        d.confidence = 0.4
        d.flags = [*d.flags, {"code": "unfamiliar_photo", "effect": "review", "message": "x"}]
        s.execute(
            update(OrderLine)
            .where((OrderLine.order_id == "o-1") & (OrderLine.sku == "box-02"))
            .values(price=900.0)
        )
    queue = review.review_queue(svc, sort="teach")
    order = [q.subject_id for q in queue]
    assert order.index(dear) < order.index(cheap)
    item = {q.subject_id: q for q in queue}
    assert item[dear].why == item[cheap].why == "value"
    high, low = item[dear].teach_score, item[cheap].teach_score
    assert high is not None and low is not None and high > low
    assert high == round(svc.review_order.score(0.4, ["unfamiliar_photo"], 900.0), 6)
    assert review.review_queue(svc, sort="age")[0].why is None  # only the teach order marks


def test_the_random_slice_has_its_share_is_marked_and_is_stable(svc: ReturnLensService) -> None:
    fraction = 0.25
    svc.review_order = ReviewOrder(random_fraction=fraction, salt="test-salt")
    first = _inspect(svc, "k-0", seed=1)
    with svc.db.write() as s:
        row = s.get(Inspection, first)
        assert row is not None and row.review_status == "pending"
        cols = {c.key: getattr(row, c.key) for c in Inspection.__table__.columns}
        for i in range(1, 200):
            s.add(Inspection(**{**cols, "id": f"ins_copy{i:04d}", "idempotency_key": f"k-{i}"}))
    queue = review.review_queue(svc, sort="teach", limit=500)
    assert len(queue) == 200
    assert queue == review.review_queue(svc, sort="teach", limit=500)  # deterministic
    why = Counter(q.why for q in queue)
    assert set(why) == {"value", "random"}
    expected = {
        q.subject_id
        for q in queue
        if ReviewOrder(random_fraction=fraction, salt="test-salt").random_key(
            "inspection", q.subject_id
        )
        < fraction
    }
    assert {q.subject_id for q in queue if q.why == "random"} == expected
    assert 0.125 * 200 <= why["random"] <= 0.375 * 200  # binomial(200, 0.25): mean 50, sd 6
    head = queue[:40]  # the head a reviewer works holds the configured share
    assert sum(q.why == "random" for q in head) == 10
    other_salt = dataclasses.replace(svc.review_order, salt="another")
    svc.review_order = other_salt
    assert {
        q.subject_id for q in review.review_queue(svc, sort="teach", limit=500) if q.why == "random"
    } != expected


def test_interleave_keeps_the_share_in_every_head() -> None:
    out = interleave(list(range(100)), [-1] * 5, 0.1)
    assert [i for i, x in enumerate(out) if x == -1] == [9, 19, 29, 39, 49]
    assert interleave([1, 2], [-1, -2, -3], 0.1) == [1, 2, -1, -2, -3]
    assert interleave([], [], 0.5) == []


def test_agreement_per_grade_matches_the_verdicts(svc: ReturnLensService) -> None:
    svc.review_order = dataclasses.replace(svc.review_order, random_fraction=1.0)
    ins = [_inspect(svc, f"k-{i}", seed=10 + i) for i in range(4)]
    rid = _queued_return(svc, "mug-01", seed=5)
    verdicts: list[tuple[SubjectType, str, dict[str, Any]]] = [
        ("inspection", ins[0], {"verdict": "approve"}),
        ("inspection", ins[1], {"verdict": "correct", "grade": "E_damaged"}),
        ("inspection", ins[2], {"verdict": "correct", "damage": []}),  # grade kept
        ("inspection", ins[3], {"verdict": "reject"}),
        ("return", rid, {"verdict": "correct", "grade": "A_new"}),
    ]
    for kind, sid, body in verdicts:
        review.submit_review(
            svc, ReviewRequest(subject_type=kind, subject_id=sid, **body), reviewer="ana"
        )
    with svc.db.read() as s:
        model = {i: s.get(Inspection, i).grade for i in ins}  # type: ignore[union-attr]
        model[rid] = s.scalars(select(Decision.grade).where(Decision.return_id == rid)).one()
    pairs = Counter(
        (model[sid], body.get("grade") or model[sid])
        for _, sid, body in verdicts
        if body["verdict"] != "reject"
    )
    stats = review_stats(svc)
    assert stats.verdicts == 5 and stats.rejected == 1
    assert stats.confusion == {
        m: {r: c for (m2, r), c in pairs.items() if m2 == m} for m, _ in pairs
    }
    for g in stats.per_grade:
        n = sum(c for (m, _), c in pairs.items() if m == g.grade)
        agree = pairs[(g.grade, g.grade)]
        assert (g.n, g.agree) == (n, agree) and g.rate == round(agree / n, 6)
    assert {g.grade for g in stats.per_grade} == {m for m, _ in pairs}
    total = sum(pairs.values())
    agreed = sum(c for (m, r), c in pairs.items() if m == r)
    assert (stats.overall.n, stats.overall.agree) == (total, agreed)
    assert 0 < agreed < total, "the verdicts include agreement and disagreement"
    assert stats.random_slice == stats.overall  # fraction 1: everything is in the slice
    svc.review_order = dataclasses.replace(svc.review_order, random_fraction=0.0)
    assert review_stats(svc).random_slice.n == 0


def test_stats_endpoint_and_a_bad_sort(sqlite_shop: Shop) -> None:
    client = sqlite_shop.client
    for role in ("reviewer", "admin"):
        got = client.get("/v1/review/stats", headers=sqlite_shop.headers(role))
        assert got.status_code == 200, got.text
        assert got.json()["overall"] == {"n": 0, "agree": 0, "rate": None}
    assert client.get("/v1/review/stats").status_code == 401
    assert client.get("/v1/review/stats", headers=sqlite_shop.headers("dock")).status_code == 403
    bad = client.get("/v1/review/queue?sort=price", headers=sqlite_shop.headers("reviewer"))
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_field", bad.text
    assert "teach" in bad.text  # the sentence lists the allowed orders
    teach = client.get("/v1/review/queue?sort=teach", headers=sqlite_shop.headers("reviewer"))
    assert teach.status_code == 200
    assert all(i["why"] in ("value", "random") for i in teach.json())
    page = client.get("/review")
    assert page.status_code == 200 and 'value="teach"' in page.text  # the console's sort
