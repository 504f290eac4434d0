"""A return's life as an explicit state machine: every status change goes through here.

The statuses, in the order a return normally lives them::

    awaiting_photos -> retake / needs_review / approved / rejected      (shopper decision)
    needs_review    -> approved / reviewed / rejected                    (reviewer verdict)
    approved, reviewed -> label_issued                                   (return label)
    approved, reviewed, label_issued -> received -> graded -> dispositioned  (dock)
    dispositioned   -> resolved -> closed                                (refund, credit...)

plus ``approved/reviewed -> resolved`` (keep it: refunded, nothing to send back),
``expired`` (a return abandoned without photos), ``rejected -> approved/reviewed``
(a reviewer overturns a rejection) and ``approved/label_issued -> rejected`` (a reviewer
rejects after an automatic approval, before the parcel arrives). Anything else is an
illegal transition: a 409 with the code ``illegal_transition`` naming both statuses.

``move`` is the only writer of ``Return.status``: it checks the transition, sets the
status, writes the audit row the timeline is built from and emits the
``return.status_changed`` event (``serving.services.outbox``), all in the caller's
transaction (so a status never changes without its record and its notification, and
never the other way round). The
timeline (``timeline``) is those rows in order, in words a shopper can read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.domain_errors import Conflict
from serving.services import outbox
from serving.storage import repo
from serving.storage.tables import AuditLog, Return

DECIDED = ("approved", "reviewed")  # accepted for return: a label may be issued
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "awaiting_photos": frozenset({"retake", "needs_review", "approved", "rejected", "expired"}),
    "retake": frozenset({"retake", "needs_review", "approved", "rejected", "expired"}),
    "needs_review": frozenset({"retake", "needs_review", "approved", "rejected", "reviewed"}),
    "approved": frozenset({"rejected", "reviewed", "label_issued", "received", "resolved"}),
    "reviewed": frozenset({"rejected", "approved", "label_issued", "received", "resolved"}),
    "label_issued": frozenset({"rejected", "received"}),
    "received": frozenset({"graded"}),
    "graded": frozenset({"dispositioned"}),
    "dispositioned": frozenset({"dispositioned", "resolved"}),
    "resolved": frozenset({"closed"}),
    "rejected": frozenset({"approved", "reviewed", "closed"}),
    "expired": frozenset({"closed"}),
    "closed": frozenset(),
}
STATUSES = tuple(TRANSITIONS)
# At the dock a parcel can only be received for a return accepted for return.
RECEIVABLE = ("approved", "reviewed", "label_issued")
STATUS_ACTION = "status_changed"

# What the shopper's timeline says for each status (the staff API adds who and why).
SENTENCES: Mapping[str, str] = {
    "awaiting_photos": "Return requested.",
    "retake": "We asked for clearer photos.",
    "needs_review": "Sent to our team for a closer look.",
    "approved": "Return approved.",
    "reviewed": "Our team reviewed your return and approved it.",
    "rejected": "Return not accepted.",
    "label_issued": "Return label issued.",
    "received": "Your parcel arrived at our warehouse.",
    "graded": "Your item was inspected.",
    "dispositioned": "Your item was processed.",
    "resolved": "Your return was resolved.",
    "closed": "Return closed.",
    "expired": "The return expired: no photos were sent in time.",
}


def check_transition(return_id: str, current: str, target: str) -> None:
    """Conflict (409, ``illegal_transition``) unless ``current -> target`` is allowed."""
    if target not in TRANSITIONS.get(current, frozenset()):
        allowed = sorted(TRANSITIONS.get(current, frozenset()))
        raise Conflict(
            f"Return {return_id} is {current}; it cannot become {target}"
            + (f" (from {current} it can become {', '.join(allowed)})." if allowed else "."),
            code="illegal_transition",
            details={"status": current, "target": target, "allowed": allowed},
        )


def can_move(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def move(
    s: Session,
    ret: Return,
    target: str,
    *,
    actor: str,
    why: str,
    now: datetime,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Check and apply one transition, with its audit row, in the caller's transaction."""
    check_transition(ret.id, ret.status, target)
    previous = ret.status
    ret.status = target
    ret.updated_at = now
    repo.append_audit(
        s,
        at=now,
        actor=actor,
        action=STATUS_ACTION,
        subject_type="return",
        subject_id=ret.id,
        payload={"from": previous, "to": target, "why": why, **dict(details or {})},
    )
    outbox.emit(
        s,
        type="return.status_changed",
        return_id=ret.id,
        payload={"from": previous, "to": target, "why": why, **dict(details or {})},
        now=now,
    )


def move_through(
    s: Session,
    ret: Return,
    targets: Sequence[str],
    *,
    actor: str,
    why: str,
    now: datetime,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Several transitions at once (a dock inspection receives, grades, dispositions)."""
    for target in targets:
        move(s, ret, target, actor=actor, why=why, now=now, details=details)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    status: str
    previous: str | None
    sentence: str
    actor: str
    why: str
    details: dict[str, Any]

    def public(self) -> dict[str, Any]:
        """What the shopper sees: when, which status, one sentence (no staff names)."""
        return {"at": self.at, "status": self.status, "sentence": self.sentence}

    def staff(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "status": self.status,
            "previous": self.previous,
            "sentence": self.sentence,
            "actor": self.actor,
            "why": self.why,
            "details": self.details,
        }


def timeline(s: Session, ret: Return) -> list[TimelineEntry]:
    """The return's status changes, oldest first, starting with its creation."""
    rows = s.scalars(
        select(AuditLog)
        .where(
            AuditLog.subject_type == "return",
            AuditLog.subject_id == ret.id,
            AuditLog.action == STATUS_ACTION,
        )
        .order_by(AuditLog.at, AuditLog.id)
    ).all()
    created = TimelineEntry(
        ret.created_at, "awaiting_photos", None, SENTENCES["awaiting_photos"], "shopper", "", {}
    )
    entries = [created]
    for row in rows:
        payload = dict(row.payload)
        to = str(payload.pop("to"))
        entries.append(
            TimelineEntry(
                row.at,
                to,
                payload.pop("from", None),
                SENTENCES.get(to, to),
                row.actor,
                str(payload.pop("why", "")),
                payload,
            )
        )
    return entries


# What the shopper reads when a person (not the photo check) set the current status.
REVIEW_SENTENCES: Mapping[str, str] = {
    "approved": "Our team checked your photos and approved your return.",
    "reviewed": "Our team checked your photos and approved your return.",
    "rejected": "Our team checked your photos and can't accept this return.",
}
REVOKED = (
    "Our team took a second look at your photos and can't accept this return after all. "
    "Please don't send the item; any return label you have is no longer valid."
)


def review_sentence(previous: str | None, status: str) -> str:
    """What the shopper is told when a reviewer moved the return from ``previous``."""
    if status == "rejected" and previous in ("approved", "label_issued"):
        return REVOKED
    return REVIEW_SENTENCES.get(status, SENTENCES.get(status, status))


def actor_kind(actor: str) -> str:
    """shopper | reviewer | dock | system: the part of an actor a shopper may see."""
    head = actor.split(":", 1)[0]
    return {"shopper": "shopper", "reviewer": "reviewer", "station": "dock"}.get(head, "system")


def status_message(entries: Sequence[TimelineEntry], decision_message: str | None) -> str:
    """The one sentence the shopper page shows for the return's current status."""
    last = entries[-1]
    kind = actor_kind(last.actor)
    if kind == "reviewer":
        return review_sentence(last.previous, last.status)
    if kind == "shopper" and decision_message:
        return decision_message
    return last.sentence
