"""``returnlens shadow report``: the challenger of shadow mode against the champion and
the reviewers (``serving.services.shadow``, which holds the logic; this module only
parses the flags and prints).

Shadow mode runs in the service (``RETURNLENS_SHADOW_MODEL_PATH`` or
``RETURNLENS_SHADOW_MODEL_VERSION``); this command reads what it stored. The database is
the service's (``RETURNLENS_DATABASE_URL``) unless ``--database-url`` names another.
"""

from __future__ import annotations

import argparse
from typing import Any

from serving.commands.policy import _when


def register(sub: Any) -> None:  # argparse._SubParsersAction
    shadow = sub.add_parser("shadow", help="shadow mode: a challenger beside the served model")
    inner = shadow.add_subparsers(dest="shadow_command", metavar="ACTION", required=True)
    report = inner.add_parser(
        "report",
        help="compare the challenger's stored predictions with the champion and the reviews",
        description="Agreement on grade and outcome, each model's auto-decision rate and "
        "accuracy against reviewer verdicts, and the decisions where they disagree.",
    )
    report.add_argument("--database-url", dest="database_url", help="default: the service's")
    report.add_argument(
        "--since", type=_when, default=None, help="only predictions since (YYYY-MM-DD or ISO, UTC)"
    )
    report.add_argument(
        "--limit", type=int, default=50, help="disagreements listed (default 50; 0: none)"
    )
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from serving.commands.service import settings_from_args
    from serving.services.shadow import report_lines, shadow_report
    from serving.storage.db import open_database
    from vision.errors import ConfigError

    if args.limit < 0:
        raise ConfigError("--limit must be 0 or more", code="invalid_setting")
    settings = settings_from_args(args)
    db = open_database(settings.database_url, migrate=False)
    try:
        result = shadow_report(db, since=args.since, limit=args.limit)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ConfigError(
            f"cannot read the shadow predictions (is the database migrated?): {reason}",
            code="database_unavailable",
        ) from exc
    finally:
        db.dispose()
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        for line in report_lines(result):
            print(line)
    return 0
