"""``serving.storage.upload_reads``: the upload's header in one prebuilt statement gives
what the ORM rows say, on SQLite and PostgreSQL, and the upload refusals it feeds keep
their codes; ``upload_writes.locked_return``, the row and counts its write re-checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, update

from serving.credentials import secret_hash
from serving.domain_errors import NotFound
from serving.services import limits
from serving.storage import repo, upload_reads, upload_writes
from serving.storage.db import Database
from serving.storage.tables import Order, Return
from tests.service_data import blurry
from tests.shop import Shop


def test_the_header_matches_the_rows(shop: Shop) -> None:
    rid, token = shop.open_return()
    for seed in (1, 2):  # two blurry uploads: two retakes, two photos
        r = shop.upload(rid, token, blurry(seed=seed))
        assert r.status_code == 200 and r.json()["decision"]["outcome"] == "retake", r.text
    others = [shop.open_return()[0] for _ in range(3)]
    other_customer = shop.open_return(order_id="ORD-2", email="bob@example.com")[0]
    db = Database(shop.settings.database_url)
    try:
        with db.write() as s:  # one rejected, one expired, one still awaiting photos
            for ret_id, status in zip(others, ("rejected", "expired", "rejected"), strict=True):
                s.execute(update(Return).where(Return.id == ret_id).values(status=status))
            s.execute(update(Return).where(Return.id == other_customer).values(status="rejected"))
        with db.read() as s:
            head = upload_reads.return_header(s, rid)
            ret = repo.require_return(s, rid)
            decisions = repo.return_decisions(s, rid)
            since = datetime.now(UTC) - timedelta(days=30)
            times = upload_reads.history_times(s, ret.customer_id, since, rid, limits.NOT_COUNTED)
            expected_history = sorted(
                r.created_at
                for r in repo.customer_returns_since(s, ret.customer_id, since, rid)
                if limits.counts_as_return(r)
            )
            assert upload_reads.return_header(s, "ret_missing") is None
            locked, *counts = upload_writes.locked_return(s, rid)
            _, *fresh = upload_writes.locked_return(s, others[0])
            columns = Return.__table__.columns.keys()
            assert {c: getattr(locked, c) for c in columns} == {c: getattr(ret, c) for c in columns}
            assert inspect(locked).transient  # the session never tracks it
            with pytest.raises(NotFound):
                upload_writes.locked_return(s, "ret_missing")
    finally:
        db.dispose()
    assert head is not None
    assert (head.status, head.customer_id, head.sku, head.order_id, head.reason) == (
        ret.status,
        "C-1",
        "box-01",
        "ORD-1",
        "changed_mind",
    )
    assert head.order_found and head.delivered_at is not None
    assert (head.line_price, head.category) == (49.0, "box")
    assert head.reference_digest is not None and head.reference_embedding is not None
    assert head.photo_count == 2
    assert head.max_sequence == max(d.sequence for d in decisions) == 2
    assert head.retakes == sum(d.outcome == "retake" for d in decisions) == 2
    assert counts == [2, 2] and fresh == [0, 0]  # what the write re-checks under its lock
    assert head.rejected_returns == 2  # the other customer's rejection is not counted
    assert sorted(times) == expected_history and len(times) == 2  # the expired one is left out


def test_missing_rows_keep_their_refusals(shop: Shop) -> None:
    rid, token = shop.open_return()
    db = Database(shop.settings.database_url)
    try:
        with db.write() as s:
            s.execute(update(Order).where(Order.id == "ORD-1").values(delivered_at=None))
    finally:
        db.dispose()
    r = shop.upload(rid, token, blurry(seed=3))
    assert r.status_code == 422 and r.json()["code"] == "not_delivered", r.text


def test_the_token_check_reads_the_stored_hash(shop: Shop) -> None:
    """The shopper token check reads one column: the row's hash for a known return, None
    for an unknown one; a wrong token or an unknown return is refused alike."""
    rid, token = shop.open_return()
    other, _ = shop.open_return()
    db = Database(shop.settings.database_url)
    try:
        with db.read() as s:
            stored = upload_reads.shopper_token_hash(s, rid)
            row_hash = repo.require_return(s, rid).shopper_token_hash
            missing = upload_reads.shopper_token_hash(s, "ret_missing")
    finally:
        db.dispose()
    assert stored == row_hash == secret_hash(token) and missing is None
    assert shop.upload(other, token, blurry(seed=4)).json()["code"] == "forbidden"
    assert shop.upload("ret_missing", token, blurry(seed=4)).json()["code"] == "forbidden"
    assert shop.upload(rid, token, blurry(seed=4)).status_code == 200
