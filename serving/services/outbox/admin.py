"""What an admin sees of the outbox and the one thing they can do to it: resend.

``list_outbox`` shows events newest first with each channel's state (the API's
``GET /v1/admin/outbox`` and ``returnlens outbox list`` both). ``resend`` makes a
channel pending and due now with a fresh attempt count, for a receiver that was down
past the last retry or lost what it got; the event keeps its id, so a receiver that did
get it the first time drops the copy. The e-mail recipient is looked up again (the
customer may have given an address since), and an e-mail with nobody to send it to is a
409 rather than a silent no-op. Each resend is an audit row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serving.domain_errors import Conflict, NotFound
from serving.services.outbox.events import CHANNELS, EMAIL, email_recipient
from serving.storage import outbox as store
from serving.storage import repo
from serving.storage.db import Database

Channel = Literal["webhook", "email"]
Status = Literal["pending", "delivered", "failed", "skipped"]


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    channel: Channel
    status: Status
    recipient: str | None = Field(description="e-mail only: the shopper's address")
    attempts: int
    next_attempt_at: datetime = Field(description="pending: when it is tried next")
    delivered_at: datetime | None
    last_error: str | None = Field(description="why the last attempt failed or was skipped")


class OutboxEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="evt_...; every delivery and retry carries it")
    type: str
    return_id: str | None
    created_at: datetime
    payload: dict[str, Any]
    channels: list[DeliveryOut] = Field(validation_alias="deliveries")


class OutboxListOut(BaseModel):
    events: list[OutboxEventOut]


def list_outbox(
    db: Database,
    *,
    status: str | None = None,
    type: str | None = None,
    return_id: str | None = None,
    limit: int = 50,
) -> OutboxListOut:
    with db.read() as s:
        rows = store.list_events(s, status=status, type=type, return_id=return_id, limit=limit)
        return OutboxListOut(events=[OutboxEventOut.model_validate(r) for r in rows])


def resend(
    db: Database, event_id: str, *, channel: str | None, actor: str, now: datetime
) -> OutboxEventOut:
    """Channel ``channel`` (None: the webhook, and the e-mail when it has a recipient)
    pending again, due ``now``; NotFound for an unknown event."""
    with db.write() as s:
        row = store.get_event(s, event_id)
        if row is None:
            raise NotFound(f"no outbox event {event_id}", code="unknown_event")
        recipient = email_recipient(s, row.type, row.return_id)
        if channel == EMAIL and recipient is None:
            raise Conflict(
                f"event {event_id} ({row.type}) has no e-mail to send: the return's customer "
                "has no address or the event type has no template",
                code="no_recipient",
            )
        chosen = [c for c in CHANNELS if _wanted(c, channel, recipient)]
        for c in chosen:
            store.reset(s, event_id, c, now=now, recipient=recipient if c == EMAIL else None)
        repo.append_audit(
            s,
            at=now,
            actor=actor,
            action="outbox.resend",
            subject_type="outbox",
            subject_id=event_id,
            payload={"channels": chosen},
        )
    with db.read() as s:
        fresh = store.get_event(s, event_id)
        assert fresh is not None
        return OutboxEventOut.model_validate(fresh)


def _wanted(channel: str, asked: str | None, recipient: str | None) -> bool:
    """The channel asked for; without one, every channel that has something to send."""
    if asked is not None:
        return channel == asked
    return channel != EMAIL or recipient is not None
