"""The notification outbox: webhooks to the shop's systems, e-mail to the shopper.

A service that changes a return calls ``emit(s, type=..., return_id=..., payload=...,
now=...)`` inside its write transaction (``events``): the event and one delivery row
per channel are committed with the change or not at all. A dispatcher (``dispatch``)
sends them later, off the request path, with retries and backoff recorded in the rows;
each service process runs one on a thread (``worker``, started by ``serving.app``), and
``returnlens outbox dispatch`` runs one on its own. ``transport`` holds the two senders,
``signing`` the webhook's body and HMAC signature scheme, ``templates`` the e-mails and
``admin`` the listing and resend behind ``/v1/admin/outbox``. Queries are in
``serving.storage.outbox``.

Event types in use: ``return.created``, ``decision.made``, ``review.verdict``,
``label.issued``, ``inspection.completed``, ``disposition.changed``,
``resolution.issued``, ``return.status_changed``.
"""

from serving.services.outbox.events import CHANNELS, EMAIL, WEBHOOK, emit

__all__ = ["CHANNELS", "EMAIL", "WEBHOOK", "emit"]
