"""``emit``: record an event in the caller's transaction, to be delivered later.

This is the transactional outbox: the event row is written in the same transaction as
the change it reports, so either both are committed or neither is. A rolled-back
request leaves nothing to send, and a committed change is never lost to a crash between
"commit" and "notify": the dispatcher finds the row whenever it next runs. Sending
happens elsewhere (``dispatch``), never inside the request, so a slow or dead receiver
cannot slow down or fail the shopper's call.

Channels are decided here, from what the event is about and what the deployment has
configured (``Channels`` in the session's ``info``, set from the settings by
``serving.app``): the webhook applies when a URL is configured; the e-mail when an SMTP
host is, the return's customer has an address and the event type has a template. A
channel that does not apply is recorded ``skipped`` with the reason, so the listing says
why nothing was sent, and nobody wakes the dispatcher for it: with neither configured,
an event costs one insert and no dispatcher work at all. (A session without ``Channels``,
as tests and tools open them, treats both as configured; the dispatcher then skips them
with the same reasons.) The address is read
now and stored on the delivery: the mail goes where the customer's address pointed when
the event happened.

A dispatcher thread in this process sleeps between polls; ``emit`` marks the session,
and after that session commits the sleeping dispatchers are woken (``wakers``), so an
event usually leaves within milliseconds of its commit instead of a poll interval.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from serving.services.outbox.templates import TEMPLATES
from serving.storage import lengths, repo
from serving.storage.outbox import PENDING, SKIPPED, ChannelRow, add_event
from serving.storage.tables import Customer, Return

WEBHOOK, EMAIL = "webhook", "email"
NO_WEBHOOK = "no webhook_url is configured"
NO_SMTP = "no smtp_host is configured"
CHANNELS = (WEBHOOK, EMAIL)
EVENT_TYPE = re.compile(rf"(?=.{{3,{lengths.EVENT_TYPE}}}$)[a-z_]+(\.[a-z_]+)+")
_WAKE = "returnlens_outbox_wake"
_wakers: set[threading.Event] = set()
_wakers_lock = threading.Lock()


@dataclass(frozen=True)
class Channels:
    """Which channels this deployment delivers on (``RETURNLENS_WEBHOOK_URL``,
    ``RETURNLENS_SMTP_HOST``)."""

    webhook: bool = True
    email: bool = True


CHANNELS_INFO = "returnlens_outbox_channels"  # Session.info key of the Channels


def emit(
    s: Session,
    *,
    type: str,
    return_id: str | None,
    payload: dict[str, Any],
    now: datetime,
) -> str:
    """Write the event and its per-channel deliveries in ``s``'s transaction (no commit);
    returns the event id (``evt_...``), which every delivery of it carries."""
    if not EVENT_TYPE.fullmatch(type):
        raise ValueError(f"outbox event type {type!r} is not a dotted lower-case name")
    payload = plain_json(payload)  # refused here, not at the caller's commit
    event_id = repo.new_id("evt")
    on: Channels = s.info.get(CHANNELS_INFO, Channels())
    webhook = (
        ChannelRow(WEBHOOK, PENDING)
        if on.webhook
        else ChannelRow(WEBHOOK, SKIPPED, note=NO_WEBHOOK)
    )
    recipient = email_recipient(s, type, return_id) if on.email else None
    mail = (
        ChannelRow(EMAIL, PENDING, recipient)
        if recipient
        else ChannelRow(EMAIL, SKIPPED, note=_no_mail_reason(type, return_id, on))
    )
    channels = (webhook, mail)
    add_event(
        s,
        event_id=event_id,
        type=type,
        return_id=return_id,
        payload=payload,
        now=now,
        channels=channels,
    )
    if any(c.status == PENDING for c in channels):
        s.info[_WAKE] = True
    return event_id


def plain_json(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as plain JSON values, times as ISO text. Anything else that JSON cannot
    hold is a TypeError now, in the caller's code, rather than a failed flush later."""

    def convert(value: Any) -> Any:
        if isinstance(value, datetime | date):
            return value.isoformat()
        raise TypeError(f"outbox payloads hold JSON values, not {type(value).__name__}")

    result: dict[str, Any] = json.loads(json.dumps(payload, default=convert))
    return result


def email_recipient(s: Session, event_type: str, return_id: str | None) -> str | None:
    """The shopper's address when this event is mailed to them; None: no e-mail."""
    if return_id is None or event_type not in TEMPLATES:
        return None
    stmt = (
        select(Customer.email)
        .join(Return, Return.customer_id == Customer.id)
        .where(Return.id == return_id)
    )
    address = s.scalar(stmt)  # autoflush: a return added in this transaction is seen
    return address or None


def _no_mail_reason(event_type: str, return_id: str | None, on: Channels) -> str:
    if not on.email:
        return NO_SMTP
    if event_type not in TEMPLATES:
        return f"no e-mail template for {event_type}"
    if return_id is None:
        return "the event names no return"
    return "the return's customer has no e-mail address"


def add_waker(flag: threading.Event) -> None:
    """Set ``flag`` whenever a transaction that emitted commits (in this process)."""
    with _wakers_lock:
        _wakers.add(flag)


def remove_waker(flag: threading.Event) -> None:
    with _wakers_lock:
        _wakers.discard(flag)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_WAKE, False):
        with _wakers_lock:
            for flag in _wakers:
                flag.set()


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(_WAKE, None)
