"""The dispatcher: claim a due delivery, send it outside any transaction, record it.

``Dispatcher.dispatch_once()`` is one pass: it claims due deliveries one at a time,
oldest first (``serving.storage.outbox.claim_next``: a lease, so concurrent dispatchers
in other threads or processes never take the same one), sends each with a bounded
timeout and records the outcome in its own short transaction. No database transaction
is open while a receiver is being waited for. Everything is in the rows (attempts,
``next_attempt_at``, the last error), so a restart resumes where the last one stopped.

Retries: attempt n failed -> due again after ``min(cap, base * 2**(n-1))`` seconds,
scaled by a random factor in [0.5, 1) ("equal jitter": never sooner than half the
step, and workers that failed together do not retry together). After ``max_attempts``
the channel is ``failed``; ``resend`` makes it pending again. The clock and the random
source are injected, so tests step time instead of sleeping.

The lease covers one send (its timeouts plus a margin): a dispatcher that dies mid-send
leaves its delivery to be retried by another once the lease runs out. That retry, and a
receiver whose answer was lost, are the only cases in which an event arrives twice;
receivers dedupe on the event id.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx

from serving.services.outbox.events import EMAIL, NO_SMTP, NO_WEBHOOK, WEBHOOK
from serving.services.outbox.templates import TEMPLATES
from serving.services.outbox.transport import (
    SendFailed,
    SmtpTarget,
    WebhookTarget,
    post_webhook,
    send_mail,
)
from serving.storage import outbox as store
from serving.storage.db import Database

if TYPE_CHECKING:
    from serving.settings import Settings

log = logging.getLogger("returnlens.outbox")
LEASE_MARGIN_S = 30.0


@dataclass(frozen=True)
class OutboxConfig:
    """Where events go and how hard to try (built from ``Settings`` by ``from_settings``)."""

    webhook: WebhookTarget | None = None  # None: the webhook channel is skipped
    smtp: SmtpTarget | None = None  # None: e-mail is skipped
    webhook_timeout_s: float = 5.0
    max_attempts: int = 8
    backoff_base_s: float = 10.0
    backoff_cap_s: float = 3600.0
    batch: int = 20  # deliveries per pass at most, so a pass ends and stop is seen
    poll_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboxConfig:
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
        webhook = WebhookTarget(settings.webhook_url, secret) if settings.webhook_url else None
        smtp = (
            SmtpTarget(
                host=settings.smtp_host,
                port=settings.smtp_port,
                mail_from=settings.mail_from,
                timeout_s=settings.smtp_timeout_s,
                starttls=settings.smtp_starttls,
            )
            if settings.smtp_host
            else None
        )
        return cls(
            webhook=webhook,
            smtp=smtp,
            webhook_timeout_s=settings.webhook_timeout_s,
            max_attempts=settings.outbox_max_attempts,
            backoff_base_s=settings.outbox_backoff_base_s,
            backoff_cap_s=settings.outbox_backoff_cap_s,
            batch=settings.outbox_batch,
            poll_s=settings.outbox_poll_seconds,
        )

    @property
    def lease_s(self) -> float:
        """Long enough for one send: httpx bounds connect, write, read and pool waits
        separately, so a send can take a few timeouts; SMTP has several round trips."""
        smtp_s = self.smtp.timeout_s if self.smtp else 0.0
        return 4 * max(self.webhook_timeout_s, smtp_s) + LEASE_MARGIN_S


def backoff_s(attempts: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after the ``attempts``-th failure (1-based)."""
    step = min(cap, base * 2 ** min(attempts - 1, 62))
    return step * (0.5 + rng.random() / 2)


@dataclass(frozen=True)
class PassReport:
    """What one ``dispatch_once`` did, by outcome."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0
    lost_claims: int = 0  # outcome not recorded: the lease was lost meanwhile

    @property
    def handled(self) -> int:
        return self.delivered + self.retrying + self.failed + self.skipped + self.lost_claims


def _worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class Dispatcher:
    db: Database
    config: OutboxConfig
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    rng: random.Random = field(default_factory=random.Random)
    worker_id: str = field(default_factory=_worker_id)
    client: httpx.Client | None = None

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = httpx.Client(
                timeout=httpx.Timeout(self.config.webhook_timeout_s), follow_redirects=False
            )

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def dispatch_once(self) -> PassReport:
        """Send what is due now, up to ``config.batch`` deliveries, oldest first."""
        counts = {"delivered": 0, "retrying": 0, "failed": 0, "skipped": 0, "lost_claims": 0}
        with self.db.read() as s:
            if not store.due_exists(s, self.clock()):
                return PassReport()
        for _ in range(self.config.batch):
            now = self.clock()
            until = now + timedelta(seconds=self.config.lease_s)
            with self.db.write() as s:
                item = store.claim_next(s, now=now, until=until, worker=self.worker_id)
            if item is None:
                break
            counts[self._handle(item)] += 1
        return PassReport(**counts)

    def _handle(self, item: store.Claimed) -> str:
        """Send one claimed delivery and record the outcome; returns its counter name."""
        attempts = item.attempts + 1
        try:
            skip = self._send(item)
        except SendFailed as exc:
            return self._failed(item, attempts, str(exc))
        except Exception as exc:  # a bug must not stop the other deliveries
            log.exception("outbox delivery %s/%s crashed", item.event_id, item.channel)
            return self._failed(item, attempts, f"internal error: {type(exc).__name__}")
        now = self.clock()
        if skip is not None:
            recorded = self._finish(item, status=store.SKIPPED, attempts=item.attempts, error=skip)
            return "skipped" if recorded else "lost_claims"
        recorded = self._finish(item, status=store.DELIVERED, attempts=attempts, delivered_at=now)
        return "delivered" if recorded else "lost_claims"

    def _send(self, item: store.Claimed) -> str | None:
        """Deliver, or return why the channel does not apply (then nothing was sent)."""
        now = self.clock()
        if item.channel == WEBHOOK:
            if self.config.webhook is None:
                return NO_WEBHOOK
            assert self.client is not None
            post_webhook(self.client, self.config.webhook, item, now)
        elif item.channel == EMAIL:
            if self.config.smtp is None:
                return NO_SMTP
            if item.type not in TEMPLATES:
                return f"no e-mail template for {item.type}"
            send_mail(self.config.smtp, item)
        else:
            return f"unknown channel {item.channel}"
        return None

    def _failed(self, item: store.Claimed, attempts: int, error: str) -> str:
        final = attempts >= self.config.max_attempts
        log.warning(
            "outbox %s %s for %s: attempt %d failed (%s)%s",
            item.channel,
            item.type,
            item.event_id,
            attempts,
            error,
            "; giving up" if final else "",
        )
        if final:
            recorded = self._finish(item, status=store.FAILED, attempts=attempts, error=error)
            return "failed" if recorded else "lost_claims"
        wait = backoff_s(attempts, self.config.backoff_base_s, self.config.backoff_cap_s, self.rng)
        due = self.clock() + timedelta(seconds=wait)
        recorded = self._finish(
            item, status=store.PENDING, attempts=attempts, error=error, next_attempt_at=due
        )
        return "retrying" if recorded else "lost_claims"

    def _finish(
        self,
        item: store.Claimed,
        *,
        status: str,
        attempts: int,
        error: str | None = None,
        delivered_at: datetime | None = None,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        with self.db.write() as s:
            recorded = store.finish(
                s,
                item.delivery_id,
                worker=self.worker_id,
                status=status,
                attempts=attempts,
                next_attempt_at=next_attempt_at or self.clock(),
                delivered_at=delivered_at,
                error=error,
            )
        if not recorded:
            log.warning(
                "outbox %s for %s: the claim expired before the outcome (%s) was recorded",
                item.channel,
                item.event_id,
                status,
            )
        return recorded
