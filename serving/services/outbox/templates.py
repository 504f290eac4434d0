"""The shopper e-mails: a subject and a plain-text body per event type.

Only events a shopper acts on or waits for have a template; the others (dispositions,
internal status changes) are for the shop's systems and go out by webhook only, so
``emit`` marks their e-mail channel skipped. ``string.Template`` keeps this in the
standard library (the serving install has no template engine) and cannot run code
from a payload. A template reads ``$return_id`` and the payload's top-level keys; a key
the payload lacks renders empty, so a template reads as a sentence either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from string import Template
from typing import Any

SIGNATURE = "\n\n-- \nThis message was sent automatically about your return; reply to your shop.\n"


@dataclass(frozen=True)
class MailTemplate:
    subject: Template
    body: Template


def _t(subject: str, body: str) -> MailTemplate:
    return MailTemplate(Template(subject), Template(body + SIGNATURE))


TEMPLATES: Mapping[str, MailTemplate] = {
    "return.created": _t(
        "Your return $return_id is open",
        "We opened return $return_id for order $order_id ($sku).\n"
        "Next step: upload one to six photos of the item from the return page.",
    ),
    "decision.made": _t(
        "Your return $return_id: $result",
        "We looked at the photos of return $return_id.\n$message",
    ),
    "review.verdict": _t(
        "Your return $return_id was reviewed",
        "A member of our team reviewed return $return_id.\n$message",
    ),
    "label.issued": _t(
        "Your return label for $return_id",
        "Your return label for return $return_id is ready.\n$label_url\n"
        "Pack the item and drop it off; we will tell you when it arrives.",
    ),
    "inspection.completed": _t(
        "We received your return $return_id",
        "Your parcel for return $return_id arrived and the item was inspected.",
    ),
    "resolution.issued": _t(
        "Your return $return_id is resolved",
        "Return $return_id is resolved: $resolution $amount\n$message",
    ),
}


class _Fields(dict[str, str]):
    """Payload fields as text; a missing key is empty rather than a KeyError."""

    def __missing__(self, key: str) -> str:
        return ""


def render(event_type: str, return_id: str | None, payload: Mapping[str, Any]) -> tuple[str, str]:
    """(subject, body) for the event; KeyError when the type has no template."""
    template = TEMPLATES[event_type]
    fields = _Fields({k: _text(v) for k, v in payload.items() if isinstance(k, str)})
    fields["return_id"] = return_id or ""
    subject = " ".join(template.subject.substitute(fields).split())  # one line, no CR/LF
    body = "\n".join(line.rstrip() for line in template.body.substitute(fields).splitlines())
    return subject, body.strip("\n") + "\n"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
