"""A return's whole journey against a live service, its webhooks and its e-mails (issue 17).

Real parts only: the README's ``returnlens serve --seed-demo`` in a subprocess (the
SHIPPED default model, SQLite in a temporary folder) with its outbox pointed at an HTTP
receiver and an aiosmtpd SMTP server on 127.0.0.1 (``tests/outbox_targets.py``), and
Debian's Chromium driving the shopper page. Three journeys, one customer (and order)
each, so no journey sees another's history:

* **A, refunded on receipt** (in Chromium): the page finds the order, the shopper sends
  the bundled ``mug-01-A_new.jpg`` (the demo promises it is approved), the page shows
  the issued label and its downloads; the dock posts an inspection of the same item;
  the return is received, graded, dispositioned and resolved with ``resolution.issued``.
  Reloaded, the page lists that timeline; the staff timeline API says who did each step.
* **B, keep it**: the bundled ``shoe-01-B_like_new.jpg`` (promised approved) on an order
  priced below the policy's return shipping, so a return loses money whatever the grade:
  resolved at once, no label (409 ``no_label``), the page tells the shopper to keep it.
* **C, revoked**: the live scenario test's approved mug render, then a reviewer rejects
  it; the reloaded page shows ``lifecycle.REVOKED``, a ``review.verdict`` goes out.

Then, once the outbox has nothing pending (a bounded poll of its table), every event it
holds reached the receiver exactly once with a valid signature, every e-mailed event
reached the mailbox exactly once (unique Message-ID, the customer's address), and each
return's events came in the order its status changes happened.

Prices come from the shipped policy (``serving/policy/default.yaml``), not from here:
A and C sit above the instant-refund price and below the category's high-value line (so
the refund waits for the parcel and nothing goes to review for its price), B below the
return shipping (its expected recovery is at most its price, so it is negative).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import parseaddr
from itertools import pairwise
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, func, select

from serving.demo_samples import SAMPLES
from serving.models import default_model_path
from serving.policy.config import load_policy
from serving.services.lifecycle import REVOKED
from serving.services.outbox.signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)
from serving.storage.tables import OutboxDelivery
from tests import live
from tests.browser import DESKTOP, PHONE, chromium, screenshot
from tests.outbox_targets import Mailbox, Receiver
from tests.requires import require_chromium

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = ROOT / "datasets" / "samples"
ADMIN_KEY = "journey-admin-key-0123456789abcdef"
SECRET = "whsec-journey-0123456789"
MAIL_FROM = "ReturnLens <returns@shop.example>"
READY_TIMEOUT_S = 180.0
DRAIN_TIMEOUT_S = 60.0  # the bound of the wait for the outbox to empty, not a timing guess
UI_TIMEOUT_MS = 60_000  # bound of each wait in the page (2 shared cores grade the photos)
STATION = "dock-7"
REVIEWER = "journey-reviewer"
NOTE = "internal: shopper photo reused from a listing"  # never shown to the shopper
APPROVED_SAMPLE = "mug-01-A_new.jpg"  # the demo's ORD-1001 promise: approved
KEEP_SAMPLE = "shoe-01-B_like_new.jpg"  # the demo's ORD-1002 promise: approved
JOURNEY_A = [
    "awaiting_photos",
    "approved",
    "label_issued",
    "received",
    "graded",
    "dispositioned",
    "resolved",
]
# The shopper's e-mails: a word each subject must carry (what the shopper is told).
SUBJECT_WORDS = {
    "return.created": "open",
    "label.issued": "label",
    "inspection.completed": "received",
    "resolution.issued": "resolved",
    "review.verdict": "reviewed",
}


@dataclass
class Journey:
    base: str
    database_url: str
    receiver: Receiver
    mailbox: Mailbox
    dock_key: str
    reviewer_key: str
    returns: dict[str, str] = field(default_factory=dict)  # journey -> return id
    emails: dict[str, str] = field(default_factory=dict)  # journey -> customer address

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=60.0)


def _sku_of(sample: str) -> str:
    return next(s.sku for s in SAMPLES if s.file == sample)


def _staff_key(client: httpx.Client, role: str, name: str) -> str:
    r = client.post(
        "/v1/admin/api-keys",
        json={"name": name, "role": role},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journey]:
    model = default_model_path()
    if not model.is_file():
        pytest.skip(f"the shipped default model is missing: {model} (make default-model)")
    require_chromium()
    root = tmp_path_factory.mktemp("journey")
    receiver, mailbox = Receiver().start(), Mailbox().start()
    port = live.free_port()
    database_url = f"sqlite:///{root / 'journey.db'}"
    env = live.clean_env(
        root,
        admin_key=ADMIN_KEY,
        ort_threads="2",
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        smtp_host="127.0.0.1",
        smtp_port=str(mailbox.port),
        mail_from=MAIL_FROM,
        outbox_poll_seconds="0.5",
        # Far above any answer time here: a retry (a legitimate second delivery) would
        # only come from a sender that gave up waiting, which is not what is tested.
        webhook_timeout_s="30",
        smtp_timeout_s="30",
    )
    argv = live.serve_argv(port, database_url, model, "--seed-demo", "--log-level", "warning")
    try:
        with live.running(
            argv,
            base=f"http://127.0.0.1:{port}",
            env=env,
            cwd=root,
            log=root / "server.log",
            timeout_s=READY_TIMEOUT_S,
        ) as (_, base):
            with httpx.Client(base_url=base, timeout=60.0) as c:
                dock = _staff_key(c, "dock", "journey-dock")
                reviewer = _staff_key(c, "reviewer", REVIEWER)
            yield Journey(base, database_url, receiver, mailbox, dock, reviewer)
    finally:
        receiver.stop()
        mailbox.stop()


def _prices() -> dict[str, float]:
    """Per journey, from the shipped policy's own numbers (see the module docstring)."""
    policy = load_policy()
    _, mug = policy.category(_sku_of(APPROVED_SAMPLE).split("-")[0])
    _, shoe = policy.category(_sku_of(KEEP_SAMPLE).split("-")[0])
    assert mug.resolution is not None and mug.resolution.instant_refund is not None
    assert mug.high_value is not None
    on_receipt = round((mug.resolution.instant_refund.max_price + mug.high_value) / 2, 2)
    assert shoe.resolution is not None and shoe.resolution.keep_it is not None
    keep = shoe.resolution.keep_it
    assert keep.return_shipping > keep.floor  # else no price makes a return lose money
    keep_price = round((keep.return_shipping + max(keep.floor, 0.0)) / 2, 2)
    assert 0 < keep_price < keep.return_shipping + keep.floor
    return {"A": on_receipt, "B": keep_price, "C": on_receipt}


def _mug_render() -> tuple[str, bytes]:
    """The live scenario test's clean mug (``tests/test_live_scenario.py``): approved."""
    from vision.synth import catalog_skus, render_photo, sample_state

    mug = next(s for s in catalog_skus(7, 2) if s.category == "mug")
    rng = np.random.default_rng(101)
    rgb, _ = render_photo(mug, sample_state(mug, "A_new", rng), rng, 768, background="plain")
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
    )
    assert ok
    return mug.sku, buf.tobytes()


def _watch(page: Any) -> list[str]:
    """Page errors and console errors (an API refusal the page shows is no error)."""
    errors: list[str] = []

    def on_console(m: Any) -> None:
        api_refusal = "/v1/" in str(m.location.get("url", "")) and "status of 4" in m.text
        if m.type == "error" and not api_refusal:
            errors.append(f"console: {m.text}")

    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("console", on_console)
    return errors


def _statuses(page: Any) -> list[str]:
    found: list[str] = page.locator("#timeline li[data-status]").evaluate_all(
        "items => items.map((li) => li.dataset.status)"
    )
    return found


def _open(c: httpx.Client, order_id: str, sku: str, email: str, reason: str) -> tuple[str, str]:
    r = c.post(
        "/v1/returns", json={"order_id": order_id, "sku": sku, "reason": reason, "email": email}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["return_id"]), str(r.json()["token"])


def _upload(c: httpx.Client, rid: str, token: str, data: bytes) -> dict[str, Any]:
    r = c.post(
        f"/v1/returns/{rid}/photos",
        headers={"Authorization": f"Bearer {token}"},
        files=[("photos", ("photo.jpg", data, "image/jpeg"))],
    )
    assert r.status_code == 200, r.text
    decision: dict[str, Any] = r.json()["decision"]
    return decision


def _pending(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            stmt = select(func.count()).where(OutboxDelivery.status == "pending")
            return int(conn.execute(stmt).scalar_one())
    finally:
        engine.dispose()


def _drained(j: Journey) -> list[dict[str, Any]]:
    """Wait (bounded) until no delivery is pending; then every outbox event."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while _pending(j.database_url):
        assert time.monotonic() < deadline, f"outbox still pending after {DRAIN_TIMEOUT_S} s"
        time.sleep(live.POLL_S)
    with j.http() as c:
        r = c.get(
            "/v1/admin/outbox",
            params={"limit": 500},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    assert len(events) < 500, "the listing was cut: raise its limit"
    return events


def _label(event: dict[str, Any]) -> str:
    if event["type"] == "return.status_changed":
        return f"status:{event['payload']['to']}"
    return str(event["type"])


def _check_order(events: list[dict[str, Any]], groups: list[set[str]], path: list[str]) -> None:
    """One return's events are exactly ``groups`` (one per request, in order): each event
    once, each group after the one before; its status changes are one chain, ``path``."""
    labels = Counter(_label(e) for e in events)
    expected = Counter(label for g in groups for label in g)
    assert labels == expected, (sorted(labels.elements()), sorted(expected.elements()))
    at = {_label(e): datetime.fromisoformat(e["created_at"]) for e in events}
    for before, after in pairwise(groups):
        assert max(at[x] for x in before) <= min(at[y] for y in after), (before, after, at)
    changes = {
        e["payload"]["from"]: e["payload"]["to"]
        for e in events
        if e["type"] == "return.status_changed"
    }
    chain = ["awaiting_photos"]
    while chain[-1] in changes:
        chain.append(changes.pop(chain[-1]))
    assert chain == path and not changes, (chain, changes)


# --------------------------------------------------------------------------- journeys
def _journey_a(j: Journey, browser: Any, tmp_path: Path, price: float) -> None:
    email = j.emails["A"]
    photo = tmp_path / "IMG_mug.jpg"
    photo.write_bytes((SAMPLES_DIR / APPROVED_SAMPLE).read_bytes())
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    errors = _watch(page)
    page.goto(f"{j.base}/")
    page.wait_for_selector("body[data-ready]")
    page.fill("#order-id", "JRN-A")
    page.fill("#email", email)
    page.click("#order-submit")
    page.wait_for_selector("#step-item:not([hidden])")
    assert page.is_checked("#item-0")  # the order's one item
    assert f"{price:.2f}" in page.inner_text("#item-list")
    page.select_option("#reason", "changed_mind")
    page.click("#item-submit")
    page.wait_for_selector("#step-photos:not([hidden])")
    page.set_input_files("#library-input", str(photo))
    page.wait_for_selector("#send-photos:not([disabled])")
    page.click("#send-photos")
    page.wait_for_selector("#decision:not([hidden])")
    assert "approved" in page.inner_text("#decision-title").lower(), page.inner_text("#decision")
    # Approved: the label is issued and shown, with both downloads (blobs: token-bound).
    page.wait_for_selector("#label-box:not([hidden]) #label-image[src^=blob]")
    assert page.get_attribute("#label-pdf", "href", timeout=5000).startswith("blob:")
    assert page.get_attribute("#label-png", "href", timeout=5000).startswith("blob:")
    assert page.is_hidden("#label-error")
    screenshot(page, "journey-a-1-label-desktop")
    rid = page.url.split("return=")[1]
    token = page.evaluate(f"sessionStorage.getItem('returnlens.token.{rid}')")
    j.returns["A"] = rid
    with j.http() as c:
        auth = {"Authorization": f"Bearer {token}"}
        assert c.get(f"/v1/returns/{rid}", headers=auth).json()["status"] == "label_issued"
        png = c.get(f"/v1/returns/{rid}/label.png", headers=auth)
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        # The dock: the parcel arrives, the item is photographed and inspected.
        r = c.post(
            "/v1/dock/inspections",
            files=[("photos", ("dock.jpg", photo.read_bytes(), "image/jpeg"))],
            data={"return_id": rid, "station_id": STATION},
            headers={"Authorization": f"Bearer {j.dock_key}", "Idempotency-Key": "journey-a"},
        )
        assert r.status_code == 201, r.text
        inspection = r.json()
        assert inspection["status"] == "matched" and inspection["return_id"] == rid
        assert not inspection["flags"] and inspection["channel"], inspection
        ret = c.get(f"/v1/returns/{rid}", headers=auth).json()
        assert ret["status"] == "resolved", ret
        assert ret["resolution"]["status"] == "issued", ret["resolution"]
        assert ret["resolution"]["timing"] == "on_receipt", ret["resolution"]
        assert ret["resolution"]["amount"] == price
        staff = c.get(
            f"/v1/review/returns/{rid}/timeline",
            headers={"Authorization": f"Bearer {j.reviewer_key}"},
        )
    assert staff.status_code == 200, staff.text
    assert [e["status"] for e in staff.json()] == JOURNEY_A
    actors = {e["status"]: e["actor"] for e in staff.json()}
    assert actors["awaiting_photos"].startswith("shopper")
    assert actors["approved"].startswith("shopper") and actors["label_issued"].startswith("shopper")
    for step in ("received", "graded", "dispositioned", "resolved"):
        assert actors[step] == f"station:{STATION}", (step, actors)
    assert all(e["why"] for e in staff.json()[1:]), staff.json()
    # Reloaded (same tab: the token is in session storage), the page reads the journey back.
    page.reload()
    page.wait_for_selector("#decision.decision--resolved")
    page.wait_for_selector("#timeline-box:not([hidden])")
    assert _statuses(page) == JOURNEY_A
    assert page.is_hidden("#label-box")  # nothing more to send
    assert f"{price:.2f}" in page.inner_text("#resolution-message")
    screenshot(page, "journey-a-2-resolved-desktop")
    assert errors == []
    context.close()


def _journey_b(j: Journey, browser: Any, price: float) -> None:
    with j.http() as c:
        rid, token = _open(c, "JRN-B", _sku_of(KEEP_SAMPLE), j.emails["B"], "does_not_fit")
        j.returns["B"] = rid
        decision = _upload(c, rid, token, (SAMPLES_DIR / KEEP_SAMPLE).read_bytes())
        assert decision["outcome"] == "approved", decision
        auth = {"Authorization": f"Bearer {token}"}
        ret = c.get(f"/v1/returns/{rid}", headers=auth).json()
        assert ret["status"] == "resolved", ret
        assert ret["resolution"]["timing"] == "keep_it" and ret["resolution"]["status"] == "issued"
        assert ret["resolution"]["amount"] == price and ret["resolution"]["offer"] == ["refund"]
        assert "keep the item" in decision["message"].lower(), decision
        assert "keep the item" in ret["status_message"].lower(), ret
        assert [e["status"] for e in ret["timeline"]] == ["awaiting_photos", "approved", "resolved"]
        label = c.post(f"/v1/returns/{rid}/label", headers=auth)
        assert label.status_code == 409 and label.json()["code"] == "no_label", label.text
        assert c.get(f"/v1/returns/{rid}/label.png", headers=auth).status_code == 409
    page = browser.new_page(viewport=PHONE)
    page.set_default_timeout(UI_TIMEOUT_MS)
    errors = _watch(page)
    page.goto(f"{j.base}/?return={rid}#token={token}")
    page.wait_for_selector("#decision.decision--resolved")
    assert "keep the item" in page.inner_text("#decision-message").lower()
    assert page.is_hidden("#label-box")
    assert _statuses(page) == ["awaiting_photos", "approved", "resolved"]
    screenshot(page, "journey-b-keep-it-phone")
    assert errors == []
    page.close()


def _journey_c(j: Journey, browser: Any, sku: str, photo: bytes) -> None:
    with j.http() as c:
        rid, token = _open(c, "JRN-C", sku, j.emails["C"], "changed_mind")
        j.returns["C"] = rid
        decision = _upload(c, rid, token, photo)
        assert decision["outcome"] == "approved", decision
        r = c.post(
            "/v1/review/verdicts",
            json={"subject_type": "return", "subject_id": rid, "verdict": "reject", "note": NOTE},
            headers={"Authorization": f"Bearer {j.reviewer_key}"},
        )
        assert r.status_code in (200, 201), r.text
        ret = c.get(f"/v1/returns/{rid}", headers={"Authorization": f"Bearer {token}"}).json()
        assert ret["status"] == "rejected" and ret["status_message"] == REVOKED, ret
        staff = c.get(
            f"/v1/review/returns/{rid}/timeline",
            headers={"Authorization": f"Bearer {j.reviewer_key}"},
        ).json()
    assert [e["status"] for e in staff] == ["awaiting_photos", "approved", "rejected"]
    assert staff[-1]["actor"] == f"reviewer:{REVIEWER}" and staff[-1]["why"] == NOTE
    page = browser.new_page(viewport=PHONE)
    page.set_default_timeout(UI_TIMEOUT_MS)
    errors = _watch(page)
    page.goto(f"{j.base}/?return={rid}#token={token}")
    page.wait_for_selector("#decision.decision--rejected")
    assert page.inner_text("#decision-message").strip() == REVOKED
    assert NOTE not in page.content()
    assert page.is_hidden("#label-box")
    assert _statuses(page) == ["awaiting_photos", "approved", "rejected"]
    screenshot(page, "journey-c-revoked-phone")
    assert errors == []
    page.close()


# --------------------------------------------------------------------------- the test
@pytest.mark.browser
def test_three_journeys_every_event_delivered_exactly_once(
    journey: Journey, tmp_path: Path
) -> None:
    j = journey
    prices = _prices()
    c_sku, c_photo = _mug_render()
    skus = {"A": _sku_of(APPROVED_SAMPLE), "B": _sku_of(KEEP_SAMPLE), "C": c_sku}
    delivered = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    j.emails = {k: f"journey-{k.lower()}@example.com" for k in skus}
    with j.http() as c:
        r = c.put(
            "/v1/admin/orders",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            json=[
                {
                    "order_id": f"JRN-{k}",
                    "customer_id": f"C-journey-{k.lower()}",
                    "customer_email": j.emails[k],
                    "sku": skus[k],
                    "price": prices[k],
                    "delivered_at": delivered,
                }
                for k in skus
            ],
        )
        assert r.status_code == 200, r.text

    with chromium() as browser:
        _journey_a(j, browser, tmp_path, prices["A"])
        _journey_b(j, browser, prices["B"])
        _journey_c(j, browser, c_sku, c_photo)

    events = _drained(j)
    by_id = {e["id"]: e for e in events}
    assert len(by_id) == len(events)
    for e in events:  # each channel that applies was delivered at its first attempt
        for ch in e["channels"]:
            if ch["channel"] == "webhook" or ch["status"] != "skipped":
                assert (ch["status"], ch["attempts"]) == ("delivered", 1), (e["type"], ch)

    # Webhooks: every event exactly once, signed, the body the event itself.
    got = Counter(j.receiver.event_ids())
    assert set(got) == set(by_id), (set(by_id) - set(got), set(got) - set(by_id))
    assert [eid for eid, n in got.items() if n != 1] == []
    for req in j.receiver.requests:
        assert verify(
            SECRET, req.headers[TIMESTAMP_HEADER], req.body, req.headers[SIGNATURE_HEADER]
        ), req.event_id
        body = req.json()
        event = by_id[req.event_id]
        assert body["id"] == req.event_id and body["type"] == event["type"]
        assert req.headers[EVENT_TYPE_HEADER] == event["type"]
        assert body["return_id"] == event["return_id"] and body["data"] == event["payload"]

    # E-mails: one message per e-mailed event, to the customer, unique Message-ID.
    mailed = {
        e["id"]: ch
        for e in events
        for ch in e["channels"]
        if ch["channel"] == "email" and ch["status"] != "skipped"
    }
    assert all(ch["status"] == "delivered" for ch in mailed.values()), mailed
    messages: dict[str, tuple[list[str], Message]] = {}
    for rcpt, msg in j.mailbox.messages:
        eid = str(msg[EVENT_ID_HEADER])
        assert eid not in messages, f"{eid} was mailed twice"
        messages[eid] = (rcpt, msg)
    assert set(messages) == set(mailed)
    ids = [str(msg["Message-ID"]) for _, msg in j.mailbox.messages]
    assert len(set(ids)) == len(ids) and all(
        eid in mid for eid, mid in zip(messages, ids, strict=True)
    )
    for eid, (rcpt, msg) in messages.items():
        assert rcpt == [mailed[eid]["recipient"]] == [parseaddr(str(msg["To"]))[1]]
        assert str(msg[EVENT_TYPE_HEADER]) == by_id[eid]["type"]

    # Per journey: the events in the order of the requests that made them, and the mails.
    mail_types = {"return.created", "decision.made", *SUBJECT_WORDS}
    expected = {
        "A": [
            {"return.created"},
            {"status:approved", "decision.made"},
            {"status:label_issued", "label.issued"},
            {
                "status:received",
                "status:graded",
                "status:dispositioned",
                "inspection.completed",
                "resolution.issued",
                "status:resolved",
            },
        ],
        "B": [
            {"return.created"},
            {"status:approved", "decision.made", "resolution.issued", "status:resolved"},
        ],
        "C": [
            {"return.created"},
            {"status:approved", "decision.made"},
            {"status:rejected", "review.verdict"},
        ],
    }
    paths = {
        "A": JOURNEY_A,
        "B": ["awaiting_photos", "approved", "resolved"],
        "C": ["awaiting_photos", "approved", "rejected"],
    }
    for k, groups in expected.items():
        rid = j.returns[k]
        own = [e for e in events if e["return_id"] == rid]
        _check_order(own, groups, paths[k])
        typed = {e["type"]: e for e in own}
        want_mail = {t for g in groups for t in g if t in mail_types}
        got_mail = {
            by_id[eid]["type"]: m
            for eid, (_, m) in messages.items()
            if by_id[eid]["return_id"] == rid
        }
        assert set(got_mail) == want_mail, (k, set(got_mail), want_mail)
        for t, msg in got_mail.items():
            assert mailed[typed[t]["id"]]["recipient"] == j.emails[k]
            subject = str(msg["Subject"])
            assert rid in subject, subject
            assert SUBJECT_WORDS.get(t, "") in subject.lower(), (t, subject)
        assert "approved" in str(got_mail["decision.made"]["Subject"]).lower()
        for ev in own:  # a status change is for the shop's systems: no e-mail
            if ev["type"] == "return.status_changed":
                (mail,) = [ch for ch in ev["channels"] if ch["channel"] == "email"]
                assert mail["status"] == "skipped", ev
    pa, pb, pc = (
        {e["type"]: e["payload"] for e in events if e["return_id"] == j.returns[k]} for k in "ABC"
    )
    assert pa["resolution.issued"]["timing"] == "on_receipt"
    assert pa["resolution.issued"]["amount"] == prices["A"]
    assert pa["inspection.completed"]["grade"] and not pa["inspection.completed"]["needs_review"]
    assert pb["resolution.issued"]["timing"] == "keep_it"
    assert pb["resolution.issued"]["amount"] == prices["B"]
    assert (
        pc["review.verdict"]["verdict"] == "reject" and pc["review.verdict"]["message"] == REVOKED
    )

    def mail_of(k: str, event_type: str) -> Message:
        (eid,) = [
            e["id"] for e in events if e["return_id"] == j.returns[k] and e["type"] == event_type
        ]
        return messages[eid][1]

    verdict_mail = mail_of("C", "review.verdict")
    text = verdict_mail.get_payload(decode=True)
    assert isinstance(text, bytes)
    body = " ".join(text.decode().split())
    assert " ".join(REVOKED.split()) in body and NOTE not in body
    keep_mail = mail_of("B", "resolution.issued")
    keep_text = keep_mail.get_payload(decode=True)
    assert isinstance(keep_text, bytes) and "keep the item" in keep_text.decode().lower()
