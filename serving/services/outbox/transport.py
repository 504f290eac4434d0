"""The two ways out: a signed webhook POST (httpx) and a plain-text e-mail (smtplib).

Each send is bounded by its timeout and reports any failure as ``SendFailed`` with a
short reason (stored as the delivery's ``last_error``); the dispatcher decides whether
to retry. Only a 2xx answer counts as delivered: redirects are not followed (a webhook
URL that moved is a configuration to fix, not something to chase with a signed body),
and any other answer, a timeout or a refused connection is retried later.

The e-mail's ``Message-ID`` is derived from the event id, so a retry after a lost
answer (the server took the mail but the connection dropped) repeats the same id and
mail systems and clients can drop the duplicate.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import httpx

from serving.services.outbox import signing
from serving.services.outbox.templates import render
from serving.storage.outbox import Claimed


class SendFailed(Exception):
    """The attempt did not deliver; the message says why (timeout, HTTP 503, ...)."""


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    mail_from: str
    timeout_s: float
    starttls: bool = False


def post_webhook(client: httpx.Client, target: WebhookTarget, item: Claimed, now: datetime) -> None:
    body = signing.webhook_body(
        item.event_id, item.type, item.created_at, item.return_id, item.payload
    )
    headers = signing.headers(item.event_id, item.type, target.secret, int(now.timestamp()), body)
    try:
        answer = client.post(target.url, content=body, headers=headers)
    except httpx.TimeoutException as exc:
        raise SendFailed(f"timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:  # refused, reset, DNS, protocol error
        raise SendFailed(f"{type(exc).__name__}: {exc}") from exc
    if not 200 <= answer.status_code < 300:
        raise SendFailed(f"HTTP {answer.status_code}")


def message_id(event_id: str, mail_from: str) -> str:
    """``<evt_...@domain of the From address>``: stable across retries of one event."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "returnlens.invalid"
    return f"<{event_id}@{domain}>"


def build_mail(target: SmtpTarget, item: Claimed) -> EmailMessage:
    if item.recipient is None:
        raise SendFailed("no recipient")
    subject, body = render(item.type, item.return_id, item.payload)
    msg = EmailMessage()
    msg["From"] = target.mail_from
    msg["To"] = item.recipient
    msg["Subject"] = subject
    msg["Date"] = format_datetime(item.created_at)
    msg["Message-ID"] = message_id(item.event_id, target.mail_from)
    msg[signing.EVENT_ID_HEADER] = item.event_id
    msg[signing.EVENT_TYPE_HEADER] = item.type
    msg.set_content(body)
    return msg


def send_mail(target: SmtpTarget, item: Claimed) -> None:
    msg = build_mail(target, item)
    try:
        with smtplib.SMTP(target.host, target.port, timeout=target.timeout_s) as smtp:
            if target.starttls:
                smtp.starttls()
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:  # timeouts are OSErrors too
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise SendFailed(f"{type(exc).__name__}: {reason}".rstrip(": ")) from exc
