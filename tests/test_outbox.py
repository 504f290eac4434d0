"""The notification outbox: events written in the caller's transaction, delivered off the
request path by webhook (signed) and e-mail, with retries, claims and an admin resend.

Real parts only: SQLite and PostgreSQL (``db_url``), an HTTP receiver and an aiosmtpd
SMTP server on 127.0.0.1 (``tests/outbox_targets.py``). The dispatcher is stepped by
hand (``dispatch_once``) on an injected clock, so backoff is crossed by moving the clock,
never by sleeping; only the service-thread test waits, with a bounded deadline.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select

from returnlens.cli import main
from serving.app import create_app
from serving.services.outbox import emit
from serving.services.outbox.dispatch import Dispatcher, OutboxConfig
from serving.services.outbox.signing import verify
from serving.services.outbox.templates import TEMPLATES, render
from serving.services.outbox.transport import SmtpTarget, WebhookTarget
from serving.settings import Settings
from serving.storage import outbox as store
from serving.storage.db import Database
from serving.storage.tables import (
    CatalogItem,
    Customer,
    Order,
    OrderLine,
    OutboxDelivery,
    OutboxEvent,
    Return,
)
from tests.outbox_targets import Mailbox, Receiver
from tests.shop import ADMIN_KEY, make_settings

SECRET = "whsec-test-0123456789"
# Today, so the API's resend (stamped by the service's real clock) is due on the test clock.
T0 = datetime.now(UTC).replace(microsecond=0)
LATER = timedelta(days=1)  # past any backoff step of these tests


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta = LATER) -> None:
        self.now += by


def _seed(db: Database) -> None:
    """Return ret_a (customer with an e-mail address) and ret_b (customer without)."""
    with db.write() as s:
        s.add(CatalogItem(sku="mug-01", category="mug", name="Mug", price=25.0, updated_at=T0))
        for cust, email in (("c-a", "ada@example.com"), ("c-b", None)):
            s.add(Customer(id=cust, email=email, created_at=T0))
            s.add(Order(id=f"o-{cust}", customer_id=cust, delivered_at=T0, created_at=T0))
            s.add(OrderLine(order_id=f"o-{cust}", sku="mug-01", price=25.0, quantity=1))
        s.flush()
        for ret, cust in (("ret_a", "c-a"), ("ret_b", "c-b")):
            s.add(
                Return(
                    id=ret,
                    order_id=f"o-{cust}",
                    sku="mug-01",
                    customer_id=cust,
                    reason="defective",
                    status="approved",
                    shopper_token_hash="0" * 64,
                    created_at=T0,
                    updated_at=T0,
                )
            )


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    _seed(database)
    yield database
    database.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox().start()
    yield box
    box.stop()


def _config(receiver: Receiver, mailbox: Mailbox | None = None, **kw: object) -> OutboxConfig:
    smtp = (
        SmtpTarget("127.0.0.1", mailbox.port, "ReturnLens <returns@shop.example>", 5.0)
        if mailbox
        else None
    )
    values: dict[str, object] = {
        "webhook": WebhookTarget(receiver.url, SECRET),
        "smtp": smtp,
        "webhook_timeout_s": 2.0,
        "max_attempts": 5,
    }
    values.update(kw)
    return OutboxConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _dispatcher(db: Database, config: OutboxConfig, clock: Clock) -> Dispatcher:
    return Dispatcher(db, config, clock=clock, rng=random.Random(7))


def _emit(
    db: Database, clock: Clock, type: str = "decision.made", ret: str | None = "ret_a"
) -> str:
    with db.write() as s:
        return emit(
            s,
            type=type,
            return_id=ret,
            payload={"outcome": "approved", "result": "approved", "message": "Send the item back."},
            now=clock(),
        )


def _channels(db: Database, event_id: str) -> dict[str, OutboxDelivery]:
    with db.read() as s:
        rows = s.scalars(select(OutboxDelivery).where(OutboxDelivery.event_id == event_id))
        return {d.channel: d for d in rows}


def test_a_rolled_back_emit_leaves_nothing_to_send(
    db: Database, receiver: Receiver, mailbox: Mailbox, clock: Clock
) -> None:
    with pytest.raises(RuntimeError), db.write() as s:
        emit(s, type="decision.made", return_id="ret_a", payload={}, now=clock())
        raise RuntimeError("the request failed after emitting")
    d = _dispatcher(db, _config(receiver, mailbox), clock)
    assert d.dispatch_once().handled == 0
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(OutboxEvent)) == 0
    assert receiver.requests == [] and mailbox.messages == []


def test_a_committed_event_goes_out_once_per_channel_signed_and_templated(
    db: Database, receiver: Receiver, mailbox: Mailbox, clock: Clock
) -> None:
    event_id = _emit(db, clock)
    assert receiver.requests == [] and mailbox.messages == []  # nothing sent by emit
    d = _dispatcher(db, _config(receiver, mailbox), clock)
    assert d.dispatch_once().delivered == 2
    assert d.dispatch_once().handled == 0  # exactly once
    [hook] = receiver.requests
    h = hook.headers
    assert verify(SECRET, h["X-ReturnLens-Timestamp"], hook.body, h["X-ReturnLens-Signature"])
    assert not verify(
        "another-secret", h["X-ReturnLens-Timestamp"], hook.body, h["X-ReturnLens-Signature"]
    )
    assert int(h["X-ReturnLens-Timestamp"]) == int(clock().timestamp())
    assert (h["X-ReturnLens-Event-Id"], h["X-ReturnLens-Event-Type"]) == (event_id, "decision.made")
    assert hook.json() == {
        "id": event_id,
        "type": "decision.made",
        "created_at": T0.isoformat(),
        "return_id": "ret_a",
        "data": {"outcome": "approved", "result": "approved", "message": "Send the item back."},
    }
    [(to, msg)] = mailbox.messages
    assert to == ["ada@example.com"] and msg["To"] == "ada@example.com"
    assert msg["Subject"] == "Your return ret_a: approved"
    assert msg["Message-ID"] == f"<{event_id}@shop.example>"
    assert "Send the item back." in msg.get_payload()
    channels = _channels(db, event_id)
    for c in ("webhook", "email"):
        assert channels[c].status == "delivered" and channels[c].attempts == 1
        assert channels[c].delivered_at == T0 and channels[c].claimed_by is None


def test_email_is_skipped_without_an_address_or_a_template(
    db: Database, receiver: Receiver, mailbox: Mailbox, clock: Clock
) -> None:
    no_address = _emit(db, clock, ret="ret_b")
    no_template = _emit(db, clock, type="disposition.changed")
    d = _dispatcher(db, _config(receiver, mailbox), clock)
    assert d.dispatch_once().delivered == 2
    for event_id, why in (
        (no_address, "the return's customer has no e-mail address"),
        (no_template, "no e-mail template for disposition.changed"),
    ):
        channels = _channels(db, event_id)
        assert channels["email"].status == "skipped" and channels["email"].attempts == 0
        assert channels["email"].last_error == why
        assert channels["webhook"].status == "delivered"
    assert mailbox.messages == [] and sorted(receiver.event_ids()) == sorted(
        [no_address, no_template]
    )


def test_unconfigured_channels_are_skipped_with_the_reason(
    db: Database, receiver: Receiver, clock: Clock
) -> None:
    event_id = _emit(db, clock)
    d = _dispatcher(db, OutboxConfig(), clock)
    assert d.dispatch_once().skipped == 2
    channels = _channels(db, event_id)
    assert channels["webhook"].last_error == "no webhook_url is configured"
    assert channels["email"].last_error == "no smtp_host is configured"


def test_a_deployment_without_channels_records_them_skipped_at_emit(
    db_url: str, clock: Clock
) -> None:
    """The service's sessions say which channels are configured (serving/app.py): with
    none, the event is written with both deliveries already skipped (same reasons), no
    dispatcher is woken, and a pass finds nothing to do."""
    from serving.services.outbox.events import CHANNELS_INFO, Channels, add_waker, remove_waker

    database = Database(db_url, session_info={CHANNELS_INFO: Channels(webhook=False, email=False)})
    _seed(database)
    woken = threading.Event()
    add_waker(woken)
    try:
        event_id = _emit(database, clock)
    finally:
        remove_waker(woken)
    channels = _channels(database, event_id)
    assert {c: d.status for c, d in channels.items()} == {"webhook": "skipped", "email": "skipped"}
    assert channels["webhook"].last_error == "no webhook_url is configured"
    assert channels["email"].last_error == "no smtp_host is configured"
    assert not woken.is_set()
    assert _dispatcher(database, OutboxConfig(), clock).dispatch_once().handled == 0
    add_waker(woken)
    try:
        with database.write() as s:  # one configured channel: that one waits, and wakes
            s.info[CHANNELS_INFO] = Channels(webhook=True, email=False)
            other = emit(s, type="decision.made", return_id="ret_a", payload={}, now=clock())
    finally:
        remove_waker(woken)
    assert woken.is_set()
    assert {c: d.status for c, d in _channels(database, other).items()} == {
        "webhook": "pending",
        "email": "skipped",
    }
    database.dispose()


def test_a_receiver_that_is_down_gets_the_event_once_it_is_up(
    db: Database, mailbox: Mailbox, clock: Clock
) -> None:
    down = Receiver()  # not started: its port refuses connections
    event_id = _emit(db, clock)
    d = _dispatcher(db, _config(down, mailbox), clock)
    report = d.dispatch_once()
    assert (report.retrying, report.delivered) == (1, 1)  # the e-mail went anyway
    hook = _channels(db, event_id)["webhook"]
    assert hook.status == "pending" and hook.attempts == 1
    assert "ConnectError" in (hook.last_error or "")
    assert hook.next_attempt_at > clock()
    assert d.dispatch_once().handled == 0  # backing off: not due yet
    up = down.start()
    try:
        clock.advance()
        assert d.dispatch_once().delivered == 1
        assert up.event_ids() == [event_id]
        hook = _channels(db, event_id)["webhook"]
        assert hook.status == "delivered" and hook.attempts == 2
    finally:
        up.stop()


def test_two_5xx_then_200_is_one_success_after_three_attempts(
    db: Database, receiver: Receiver, clock: Clock
) -> None:
    receiver.script = [500, 503]
    event_id = _emit(db, clock)
    d = _dispatcher(db, _config(receiver), clock)
    backoffs = []
    for _ in range(3):
        d.dispatch_once()
        hook = _channels(db, event_id)["webhook"]
        backoffs.append(hook.next_attempt_at - clock())
        clock.advance()
    assert receiver.answered == [500, 503, 200] and receiver.event_ids() == [event_id] * 3
    assert hook.status == "delivered" and hook.attempts == 3
    # 10 s then 20 s nominal, each jittered into [half, full).
    assert timedelta(seconds=5) <= backoffs[0] < timedelta(seconds=10)
    assert timedelta(seconds=10) <= backoffs[1] < timedelta(seconds=20)


def test_a_slow_receiver_is_timed_out_and_retried_without_blocking_the_emitter(
    db: Database, receiver: Receiver, clock: Clock
) -> None:
    receiver.hold = True
    event_id = _emit(db, clock)  # returns with the receiver stalled: emit never calls it
    assert receiver.requests == [] and _channels(db, event_id)["webhook"].status == "pending"
    d = _dispatcher(db, _config(receiver, webhook_timeout_s=0.3), clock)
    assert d.dispatch_once().retrying == 1
    hook = _channels(db, event_id)["webhook"]
    assert hook.attempts == 1 and (hook.last_error or "").startswith("timed out")
    receiver.hold = False
    receiver.release.set()
    clock.advance()
    assert d.dispatch_once().delivered == 1
    # The stalled attempt reached the receiver too: it dedupes on the repeated event id.
    assert set(receiver.event_ids()) == {event_id}
    assert _channels(db, event_id)["webhook"].attempts == 2


def test_after_max_attempts_the_channel_fails_and_an_admin_resends_it(
    db_url: str,
    db: Database,
    receiver: Receiver,
    clock: Clock,
    tmp_path: Path,
    tiny_model: Path,
) -> None:
    receiver.script = [500] * 3
    event_id = _emit(db, clock, ret="ret_b")
    d = _dispatcher(db, _config(receiver, max_attempts=3), clock)
    reports = []
    for _ in range(4):
        reports.append(d.dispatch_once())
        clock.advance()
    assert [r.retrying for r in reports] == [1, 1, 0, 0] and reports[2].failed == 1
    hook = _channels(db, event_id)["webhook"]
    assert hook.status == "failed" and hook.attempts == 3 and hook.last_error == "HTTP 500"

    settings = make_settings(db_url, tmp_path, tiny_model)  # no dispatcher thread
    admin = {"X-API-Key": ADMIN_KEY}
    with TestClient(create_app(settings)) as client:
        listed = client.get("/v1/admin/outbox", params={"status": "failed"}, headers=admin)
        assert listed.status_code == 200
        [event] = listed.json()["events"]
        assert event["id"] == event_id and event["return_id"] == "ret_b"
        states = {c["channel"]: (c["status"], c["attempts"]) for c in event["channels"]}
        assert states == {"webhook": ("failed", 3), "email": ("skipped", 0)}
        assert client.get("/v1/admin/outbox").status_code == 401
        for params in ({"status": "lost"}, {"limit": 0}):
            bad = client.get("/v1/admin/outbox", params=params, headers=admin)
            assert bad.status_code == 422 and bad.json()["code"] == "invalid_field", params
        unknown = client.post("/v1/admin/outbox/evt_nope/resend", headers=admin)
        assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_event"
        bad = client.post(f"/v1/admin/outbox/{event_id}/resend?channel=fax", headers=admin)
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_field"
        nobody = client.post(f"/v1/admin/outbox/{event_id}/resend?channel=email", headers=admin)
        assert nobody.status_code == 409 and nobody.json()["code"] == "no_recipient"
        r = client.post(f"/v1/admin/outbox/{event_id}/resend", headers=admin)
        assert r.status_code == 200, r.text
        states = {c["channel"]: (c["status"], c["attempts"]) for c in r.json()["channels"]}
        assert states == {"webhook": ("pending", 0), "email": ("skipped", 0)}
    assert d.dispatch_once().delivered == 1
    assert receiver.event_ids() == [event_id] * 4 and receiver.answered[-1] == 200
    assert _channels(db, event_id)["webhook"].status == "delivered"


def test_one_returns_events_go_out_in_order_and_wait_for_an_earlier_retry(
    db: Database, receiver: Receiver, clock: Clock
) -> None:
    receiver.script = [500]
    first, second = _emit(db, clock, "return.created"), _emit(db, clock, "decision.made")
    other = _emit(db, clock, "return.created", ret="ret_b")
    d = _dispatcher(db, _config(receiver), clock)
    assert d.dispatch_once().retrying == 1
    assert receiver.event_ids() == [first, other]  # ret_a's second waits for its first
    clock.advance()
    assert d.dispatch_once().delivered == 2
    assert receiver.event_ids() == [first, other, first, second]


def test_a_claim_holds_until_its_lease_ends_then_another_worker_retries(
    db: Database, receiver: Receiver, clock: Clock
) -> None:
    event_id = _emit(db, clock)
    config = _config(receiver)
    with db.write() as s:  # a worker that claimed the webhook, then died before sending
        until = clock() + timedelta(seconds=config.lease_s)
        dead = store.claim_next(s, now=clock(), until=until, worker="dead-worker")
    assert dead is not None and dead.channel == "webhook"
    d = _dispatcher(db, config, clock)
    assert d.dispatch_once().handled == 1  # the e-mail (skipped: no SMTP); not the webhook
    assert receiver.requests == []
    clock.advance(timedelta(seconds=config.lease_s))
    assert d.dispatch_once().delivered == 1 and receiver.event_ids() == [event_id]
    with db.write() as s:  # the dead worker's late outcome cannot overwrite it
        assert not store.finish(
            s,
            dead.delivery_id,
            worker="dead-worker",
            status="failed",
            attempts=9,
            next_attempt_at=clock(),
        )
    assert _channels(db, event_id)["webhook"].status == "delivered"


def test_two_dispatchers_on_one_database_deliver_each_event_once(
    db_url: str, db: Database, receiver: Receiver, mailbox: Mailbox, clock: Clock
) -> None:
    events = [_emit(db, clock, ret=("ret_a", "ret_b", None)[i % 3]) for i in range(24)]
    config = _config(receiver, mailbox, batch=5)
    others = [Database(db_url), Database(db_url)]  # one engine each, as two processes
    workers = [_dispatcher(o, config, clock) for o in others]
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(d: Dispatcher) -> None:
        try:
            start.wait(timeout=30)
            while d.dispatch_once().handled:
                pass
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for o in others:
        o.dispose()
    assert errors == [] and not any(t.is_alive() for t in threads)
    assert sorted(receiver.event_ids()) == sorted(events)  # each exactly once
    mailed = [m["X-ReturnLens-Event-Id"] for _, m in mailbox.messages]
    assert sorted(mailed) == sorted(e for i, e in enumerate(events) if i % 3 == 0)
    with db.read() as s:
        states = s.execute(
            select(OutboxDelivery.status, func.count()).group_by(OutboxDelivery.status)
        )
        assert dict(states.all()) == {"delivered": 24 + 8, "skipped": 16}


def test_the_service_thread_delivers_soon_after_the_commit(
    db_url: str, tmp_path: Path, tiny_model: Path, receiver: Receiver
) -> None:
    """Polls once an hour, so only the wake-up on commit can deliver within the deadline."""
    settings = make_settings(
        db_url,
        tmp_path,
        tiny_model,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        outbox_poll_seconds=3600,
        outbox_dispatch=True,
    )
    with TestClient(create_app(settings)) as client:
        service = client.app.state.service  # type: ignore[attr-defined]
        with service.db.write() as s:
            event_id = emit(s, type="label.issued", return_id=None, payload={}, now=service.now())
        deadline = time.monotonic() + 15
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)  # bounded poll for the thread's delivery
        assert receiver.event_ids() == [event_id]
    assert not any(t.name == "returnlens-outbox" and t.is_alive() for t in threading.enumerate())


def test_cli_dispatches_once_and_lists(
    db_url: str,
    db: Database,
    receiver: Receiver,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    event_id = _emit(db, clock)
    monkeypatch.setenv("RETURNLENS_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("RETURNLENS_WEBHOOK_SECRET", SECRET)
    monkeypatch.delenv("RETURNLENS_SMTP_HOST", raising=False)
    assert main(["outbox", "dispatch", "--once", "--database-url", db_url]) == 0
    assert "delivered 1" in capsys.readouterr().out and receiver.event_ids() == [event_id]
    assert main(["outbox", "list", "--database-url", db_url, "--status", "delivered"]) == 0
    line = capsys.readouterr().out.strip()
    assert event_id in line and "webhook=delivered(1)" in line and "email=skipped(0)" in line
    assert main(["outbox", "list", "--database-url", db_url, "--limit", "0"]) == 2
    assert "[invalid_setting]" in capsys.readouterr().err


def test_a_webhook_url_without_a_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="webhook_secret"):
        Settings(webhook_url="https://shop.example/hooks")
    signed = Settings(webhook_url="https://shop.example/hooks", webhook_secret=SecretStr("s"))
    assert signed.webhook_url == "https://shop.example/hooks"


def test_emit_refuses_what_it_cannot_store_before_the_commit(db: Database, clock: Clock) -> None:
    with db.write() as s:
        with pytest.raises(ValueError, match="dotted"):
            emit(s, type="Decision Made", return_id="ret_a", payload={}, now=clock())
        with pytest.raises(TypeError, match="JSON values"):
            emit(s, type="decision.made", return_id="ret_a", payload={"x": object()}, now=clock())
        event_id = emit(s, type="decision.made", return_id="ret_a", payload={"at": T0}, now=clock())
    with db.read() as s:
        row = s.get(OutboxEvent, event_id)
        assert row is not None and row.payload == {"at": T0.isoformat()}


@pytest.mark.parametrize("event_type", sorted(TEMPLATES))
def test_every_template_renders_a_one_line_subject_and_no_placeholders(event_type: str) -> None:
    for payload in ({}, {"outcome": "approved", "message": "a\nb", "amount": 12.5}):
        subject, body = render(event_type, "ret_x", payload)
        assert "ret_x" in subject and "\n" not in subject and "$" not in subject + body
