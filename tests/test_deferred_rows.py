"""Audit rows and outbox events are written when their transaction commits, one statement
per table (``serving/storage/deferred.py``), on SQLite and PostgreSQL.

What must hold: every row added lands, in the order it was added (the outbox delivers a
return's events in delivery-id order); nothing lands when the transaction rolls back,
and nothing carries over into the session's next transaction; an event may refer to a
row the same transaction added through the ORM.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select

from serving.services import outbox
from serving.storage import repo
from serving.storage.db import Database
from serving.storage.tables import (
    AuditLog,
    OutboxDelivery,
    OutboxEvent,
    Return,
)
from tests.conftest import ORDER_AT as T0


@pytest.fixture
def db(order_db: Database) -> Database:
    return order_db


def _return(rid: str) -> Return:
    return Return(id=rid, order_id="o1", sku="s1", customer_id="c1", reason="defective",
                  status="awaiting_photos", shopper_token_hash="0" * 64, created_at=T0,
                  updated_at=T0)  # fmt: skip


def _audit(s: Any, n: int, rid: str) -> None:
    repo.append_audit(s, at=T0, actor="test", action=f"step_{n}", subject_type="return",
                      subject_id=rid, payload={"n": n})  # fmt: skip


def _statements(db: Database) -> list[str]:
    """Every INSERT sent to the database from now on (one entry per executemany)."""
    seen: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def _record(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            seen.append(statement.split("(")[0].split()[-1])

    return seen


def test_rows_land_at_commit_in_order_one_statement_per_table(db: Database) -> None:
    inserts = _statements(db)
    with db.write() as s:
        s.add(_return("ret_new"))  # an ORM row the events refer to, not flushed yet
        for n in range(3):
            _audit(s, n, "ret_new")
            outbox.emit(
                s, type=f"test.step_{'abc'[n]}", return_id="ret_new", payload={"n": n}, now=T0
            )
        assert inserts == []  # nothing written yet: all of it waits for the commit
    assert inserts == ["returns", "audit_log", "outbox", "outbox_deliveries"]
    with db.read() as s:
        audit = s.scalars(select(AuditLog).order_by(AuditLog.id)).all()
        assert [a.action for a in audit] == ["step_0", "step_1", "step_2"]
        events = {e.id: e.type for e in s.scalars(select(OutboxEvent))}
        deliveries = s.scalars(select(OutboxDelivery).order_by(OutboxDelivery.id)).all()
    assert sorted(events.values()) == ["test.step_a", "test.step_b", "test.step_c"]
    # two channels per event (webhook, e-mail), in the order the events were emitted
    assert [events[d.event_id] for d in deliveries] == [
        t for t in ("test.step_a", "test.step_b", "test.step_c") for _ in range(2)
    ]


def test_a_rolled_back_transaction_writes_none_of_them(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write() as s:
        s.add(_return("ret_gone"))
        _audit(s, 0, "ret_gone")
        outbox.emit(s, type="test.gone", return_id="ret_gone", payload={}, now=T0)
        raise RuntimeError("the caller fails before the commit")
    session = db._write()  # one session, two transactions (the service opens one each)
    try:
        session.begin()
        _audit(session, 0, "ret_gone")
        session.rollback()
        session.begin()  # its next transaction carries nothing over
        _audit(session, 1, "ret_kept")
        session.commit()
    finally:
        session.close()
    with db.read() as s:
        assert [a.action for a in s.scalars(select(AuditLog))] == ["step_1"]
        assert s.scalars(select(OutboxEvent)).all() == []
        assert s.get(Return, "ret_gone") is None
