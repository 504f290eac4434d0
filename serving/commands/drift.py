"""``returnlens drift``: the serving model's drift report (``serving/services/drift.py``).

Reads the model card's drift reference (``returnlens model fit-drift-reference``) and the
latest stored photos from the service's database (``RETURNLENS_DATABASE_URL``, or
``--database-url``), and prints per signal the chi-square statistic, p-value, PSI and
whether it drifted, then the estimated accuracy. Exit 0 without drift, 1 with drift,
2 when the model has no reference. The model is the service's unless ``--model`` names
an ONNX file; no ONNX session is started (the card is read from the file).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:  # argparse._SubParsersAction
    p = sub.add_parser(
        "drift",
        help="the serving model's drift: latest stored photos against the card's reference",
        description="Test the latest stored photos' grades, damage labels, unfamiliarity, "
        "abstain rate and input statistics against the model card's drift reference.",
    )
    p.add_argument("--database-url", dest="database_url", help="default: the service's")
    p.add_argument("--model", dest="model_path", type=Path, help="default: the service's")
    p.add_argument(
        "--window", type=int, default=None, help="latest photos tested (default: the setting)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_drift)


def _drift(args: argparse.Namespace) -> int:
    from serving.commands.service import settings_from_args
    from serving.domain_errors import NotFound
    from serving.services.drift import report_for
    from serving.storage.db import open_database
    from vision.registry import card_of

    settings = settings_from_args(args)
    card = card_of(settings.resolve_model_path())
    db = open_database(settings.database_url, migrate=False)
    try:
        report = report_for(db, card, args.window or settings.drift_window)
    except NotFound as exc:
        print(exc.message)
        return 2
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        print("\n".join(report.lines()))
    return 1 if report.drifted else 0
