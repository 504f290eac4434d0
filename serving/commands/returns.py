"""``returnlens returns expire``: expire returns abandoned without photos (for cron).

The service expires a shopper's abandoned return when it next matters (the same order
line is opened again); this command does it for every return still waiting for its
first photo after ``RETURNLENS_ABANDONED_AFTER_HOURS`` (``serving.services.limits``),
each with an audit row by ``system`` and its place in the return's timeline.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any


def register(sub: Any) -> None:  # argparse._SubParsersAction
    returns = sub.add_parser("returns", help="return housekeeping: expire abandoned returns")
    inner = returns.add_subparsers(dest="returns_command", metavar="ACTION", required=True)
    exp = inner.add_parser(
        "expire",
        help="expire returns still waiting for their first photo after the set time",
    )
    exp.add_argument("--database-url", dest="database_url", help="default: the service's")
    exp.add_argument(
        "--hours",
        type=float,
        help="abandoned after this many hours (default RETURNLENS_ABANDONED_AFTER_HOURS)",
    )
    exp.add_argument("--json", action="store_true", help="print the expired ids as JSON")
    exp.set_defaults(handler=_expire)


def _expire(args: argparse.Namespace) -> int:
    from serving.commands.service import settings_from_args
    from serving.services.limits import expire_abandoned
    from serving.storage.db import open_database
    from vision.errors import ConfigError

    settings = settings_from_args(args)
    hours = settings.abandoned_after_hours if args.hours is None else args.hours
    if not hours > 0:
        raise ConfigError("--hours must be more than 0", code="invalid_setting")
    db = open_database(settings.database_url, migrate=False)
    try:
        with db.write() as s:
            expired = expire_abandoned(s, datetime.now(UTC), timedelta(hours=hours))
    finally:
        db.dispose()
    if args.json:
        print(json.dumps({"expired": expired, "hours": hours}))
    else:
        print(f"expired {len(expired)} return(s) waiting for photos for over {hours:g} hours")
        for rid in expired:
            print(f"  {rid}")
    return 0
