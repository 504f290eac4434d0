"""``returnlens jobs worker|enqueue|list``: background jobs from the command line
(``serving.services.jobs`` holds the logic; this module parses flags and prints).

``worker`` runs the consumer in the foreground (Ctrl-C: the jobs in flight finish
first), with the sweep that re-enqueues due and lost work; run one or more anywhere the
database and the queue (``RETURNLENS_JOB_QUEUE``) are reachable. ``enqueue`` adds a job
(deliver-outbox, expire-returns, export-reviewed --out DIR). ``list`` shows each job's
state, attempts and last error, and the queue's state.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

STATUSES = ("queued", "running", "retrying", "done", "failed", "interrupted")
NAMES = ("deliver-outbox", "expire-returns", "export-reviewed")


def register(sub: Any) -> None:  # argparse._SubParsersAction
    jobs = sub.add_parser("jobs", help="background jobs: worker, enqueue, list")
    inner = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    worker = inner.add_parser(
        "worker",
        help="run jobs until interrupted",
        description="Consume background jobs (outbox delivery, return expiry, exports) "
        "and sweep due work into the queue every RETURNLENS_JOB_SWEEP_SECONDS.",
    )
    worker.add_argument("--database-url", dest="database_url", help="default: the service's")
    worker.add_argument(
        "--workers", dest="job_workers", type=int, default=1, help="threads running jobs (1)"
    )
    worker.set_defaults(handler=_worker)
    enqueue = inner.add_parser("enqueue", help="add a job to the queue")
    enqueue.add_argument("name", choices=NAMES)
    enqueue.add_argument("--database-url", dest="database_url", help="default: the service's")
    enqueue.add_argument("--out", help="export-reviewed: the output folder")
    enqueue.add_argument("--hours", type=float, help="expire-returns: abandoned after (h)")
    enqueue.add_argument("--model", help="regrade: registry version or .onnx file")
    enqueue.add_argument("--since", help="regrade: decisions since (YYYY-MM-DD or ISO)")
    enqueue.set_defaults(handler=_enqueue)
    listing = inner.add_parser("list", help="jobs, newest first, with state and last error")
    listing.add_argument("--database-url", dest="database_url", help="default: the service's")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--name", choices=NAMES)
    listing.add_argument("--limit", type=int, default=50, help="default 50")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    from serving.commands.service import settings_from_args
    from serving.storage.db import open_database

    settings = settings_from_args(args)
    return settings, open_database(settings.database_url, migrate=False)


def _worker(args: argparse.Namespace) -> int:
    from serving.services.jobs import open_queue
    from serving.services.jobs.worker import run_worker
    from vision.errors import ConfigError

    if not 1 <= args.job_workers <= 64:
        raise ConfigError("--workers must be between 1 and 64", code="invalid_setting")
    settings, db = _open(args)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    queue = open_queue(settings, db)
    try:
        run_worker(queue, workers=args.job_workers)
    finally:
        queue.close()
        db.dispose()
    return 0


def _enqueue(args: argparse.Namespace) -> int:
    from pathlib import Path

    from serving.services.jobs import open_queue
    from vision.errors import ConfigError

    kwargs: dict[str, Any] = {}
    if args.name == "export-reviewed":
        if not args.out:
            raise ConfigError("export-reviewed needs --out DIR", code="invalid_setting")
        kwargs["out"] = str(Path(args.out).resolve())
    if args.name == "expire-returns" and args.hours is not None:
        kwargs["hours"] = args.hours
    if args.name == "regrade":
        if not args.model:
            raise ConfigError("regrade needs --model VERSION", code="invalid_setting")
        kwargs |= {"model": args.model, "since": args.since}
    settings, db = _open(args)
    queue = open_queue(settings, db)
    try:
        job_id = queue.enqueue(args.name, **kwargs)
    finally:
        queue.close()
        db.dispose()
    print(job_id)
    return 0


def _list(args: argparse.Namespace) -> int:
    from serving.services.jobs import open_queue
    from serving.services.jobs.admin import list_jobs
    from vision.errors import ConfigError

    if not 1 <= args.limit <= 10_000:
        raise ConfigError("--limit must be between 1 and 10000", code="invalid_setting")
    settings, db = _open(args)
    queue = open_queue(settings, db)
    try:
        result = list_jobs(db, status=args.status, name=args.name, limit=args.limit)
        state = queue.state()
    finally:
        queue.close()
        db.dispose()
    if args.json:
        print(json.dumps({"queue": state.to_dict(), **result.model_dump(mode="json")}, indent=2))
        return 0
    waiting = "unreachable" if state.waiting is None else f"{state.waiting} waiting"
    print(f"queue: {state.backend}, {waiting}")
    for j in result.jobs:
        error = f" [{j.last_error}]" if j.last_error else ""
        print(
            f"{j.enqueued_at.isoformat()} {j.id} {j.name} {j.status} attempts={j.attempts}{error}"
        )
    return 0
