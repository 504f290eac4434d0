"""``returnlens outbox dispatch|list``: the notification outbox from the command line
(``serving.services.outbox`` holds the logic; this module parses flags and prints).

Every service worker already runs a dispatcher thread (``RETURNLENS_OUTBOX_DISPATCH``,
on by default). ``dispatch`` runs one more, or the only one when the service's is turned
off: in the foreground until interrupted, or with ``--once`` until nothing is due. It
shares the outbox safely with the service's (claims, ``serving.storage.outbox``). The
targets and the database come from the ``RETURNLENS_*`` settings; ``--database-url``
names another database.
"""

from __future__ import annotations

import argparse
from typing import Any

STATUSES = ("pending", "delivered", "failed", "skipped")


def register(sub: Any) -> None:  # argparse._SubParsersAction
    outbox = sub.add_parser("outbox", help="the notification outbox (webhooks and e-mail)")
    inner = outbox.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    dispatch = inner.add_parser(
        "dispatch",
        help="deliver due events (webhook, e-mail) with retries",
        description="Deliver due outbox events to the configured webhook and SMTP server.",
    )
    dispatch.add_argument("--database-url", dest="database_url", help="default: the service's")
    dispatch.add_argument(
        "--once", action="store_true", help="deliver what is due now, then exit (else: run)"
    )
    dispatch.set_defaults(handler=_dispatch)
    listing = inner.add_parser("list", help="events, newest first, with each channel's state")
    listing.add_argument("--database-url", dest="database_url", help="default: the service's")
    listing.add_argument("--status", choices=STATUSES, help="events with a channel in this state")
    listing.add_argument("--type", dest="event_type", help="e.g. decision.made")
    listing.add_argument("--return-id", dest="return_id")
    listing.add_argument("--limit", type=int, default=50, help="default 50")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    from serving.commands.service import settings_from_args
    from serving.storage.db import open_database

    settings = settings_from_args(args)
    return settings, open_database(settings.database_url, migrate=False)


def _unreadable(exc: Exception) -> Exception:
    from vision.errors import ConfigError

    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return ConfigError(
        f"cannot read the outbox (is the database migrated?): {reason}",
        code="database_unavailable",
    )


def _dispatch(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from serving.services.outbox.dispatch import Dispatcher, OutboxConfig
    from serving.services.outbox.worker import OutboxWorker

    settings, db = _open(args)
    dispatcher = Dispatcher(db, OutboxConfig.from_settings(settings))
    try:
        if not args.once:
            OutboxWorker(dispatcher).run_forever()  # until Ctrl-C
            return 0
        totals = {"delivered": 0, "retrying": 0, "failed": 0, "skipped": 0, "lost_claims": 0}
        while True:
            report = dispatcher.dispatch_once()
            for key in totals:
                totals[key] += getattr(report, key)
            if report.handled == 0:
                break
        print(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in totals.items()))
        return 0
    except SQLAlchemyError as exc:
        raise _unreadable(exc) from exc
    finally:
        dispatcher.close()
        db.dispose()


def _list(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from serving.services.outbox.admin import list_outbox
    from vision.errors import ConfigError

    if not 1 <= args.limit <= 10_000:
        raise ConfigError("--limit must be between 1 and 10000", code="invalid_setting")
    _settings, db = _open(args)
    try:
        result = list_outbox(
            db, status=args.status, type=args.event_type, return_id=args.return_id, limit=args.limit
        )
    except SQLAlchemyError as exc:
        raise _unreadable(exc) from exc
    finally:
        db.dispose()
    if args.json:
        print(result.model_dump_json(indent=2))
        return 0
    for e in result.events:
        states = " ".join(
            f"{c.channel}={c.status}({c.attempts})" + (f" [{c.last_error}]" if c.last_error else "")
            for c in e.channels
        )
        print(f"{e.created_at.isoformat()} {e.id} {e.type} {e.return_id or '-'} {states}")
    return 0
