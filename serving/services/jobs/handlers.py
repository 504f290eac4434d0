"""What each job does: thin calls into the functions the service and the CLI already use.

Every handler is idempotent: it reads what is due from the application database and
does it, so a second run (a duplicate wake-up, a retry, a job re-enqueued after its
worker died) finds nothing left or rewrites the same result. Each returns a small JSON
summary. A handler raises on failure; the queue retries it (``queue``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving.storage.db import Database

if TYPE_CHECKING:
    from serving.settings import Settings

MAX_OUTBOX_PASSES = 50  # a delivery job ends; what is left waits for the next wake-up


@dataclass(frozen=True)
class JobContext:
    db: Database
    settings: Settings
    clock: Callable[[], datetime]


def deliver_outbox(ctx: JobContext) -> dict[str, Any]:
    """Deliver the outbox's due events: passes until one is not full (more may be due
    after a full one), at most ``MAX_OUTBOX_PASSES``. Claims keep this safe beside the
    service's dispatcher threads and other jobs."""
    from serving.services.outbox.dispatch import Dispatcher, OutboxConfig

    dispatcher = Dispatcher(ctx.db, OutboxConfig.from_settings(ctx.settings), clock=ctx.clock)
    totals = {"delivered": 0, "retrying": 0, "failed": 0, "skipped": 0, "lost_claims": 0}
    try:
        for _ in range(MAX_OUTBOX_PASSES):
            report = dispatcher.dispatch_once()
            for key in totals:
                totals[key] += getattr(report, key)
            if report.handled < dispatcher.config.batch:
                break
    finally:
        dispatcher.close()
    return totals


def expire_returns(ctx: JobContext, hours: float | None = None) -> dict[str, Any]:
    """Expire returns still waiting for their first photo (``serving.services.limits``)."""
    from serving.services.limits import expire_abandoned

    hours = ctx.settings.abandoned_after_hours if hours is None else float(hours)
    if not hours > 0:
        raise ValueError("hours must be more than 0")
    with ctx.db.write() as s:
        expired = expire_abandoned(s, ctx.clock(), timedelta(hours=hours))
    return {"expired": expired, "hours": hours}


def export_reviewed(
    ctx: JobContext,
    out: str,
    verdicts: list[str] | None = None,
    include_failed_quality: bool = False,
) -> dict[str, Any]:
    """The reviewed-label export (``returnlens dataset export-reviewed``) into ``out``;
    the same rows give the same files, so a rerun rewrites the same manifest."""
    from serving.storage.review_export import DEFAULT_VERDICTS, ExportOptions
    from serving.storage.review_export import export_reviewed as export

    options = ExportOptions(
        verdicts=tuple(verdicts) if verdicts else DEFAULT_VERDICTS,
        include_failed_quality=include_failed_quality,
    )
    report = export(ctx.settings.database_url, ctx.settings.photo_dir, Path(out), options)
    return report.to_dict()


def regrade(
    ctx: JobContext, model: str, since: str | None = None, workers: int = 1
) -> dict[str, Any]:
    """``returnlens regrade`` (``serving.services.regrade``) in a child process: it builds
    a service per worker process, which only the CLI layer may. Idempotent and resumable
    (a decision already graded by the model is skipped), so a retry does what is left;
    a run with failed decisions raises, and the retry grades those again."""
    import json
    import os
    import subprocess
    import sys

    argv = [sys.executable, "-m", "returnlens", "regrade", "--json", "--model", model]
    argv += ["--workers", str(int(workers)), *(["--since", since] if since else [])]
    env = {**os.environ, "RETURNLENS_DATABASE_URL": ctx.settings.database_url}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        tail = proc.stderr.strip()[-500:]
        raise RuntimeError(f"regrade exited {proc.returncode}: {tail}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"regrade: {result.get('failed')} decisions failed: {result['errors']}")
    return result


HANDLERS: dict[str, Callable[..., dict[str, Any]]] = {
    "regrade": regrade,
    "deliver-outbox": deliver_outbox,
    "expire-returns": expire_returns,
    "export-reviewed": export_reviewed,
}
