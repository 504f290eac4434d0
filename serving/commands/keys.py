"""``returnlens keys create|list|revoke``: staff API keys, straight on the database.

The same functions as ``/v1/admin/api-keys`` (``serving.services.keys``), without a
running service or a model: an operator creates the first admin key this way instead of
starting the service with a bootstrap key. ``create`` prints the new key once, on
stdout, for the operator to hand over; the service never logs it. ``list`` shows
name, role, prefix, created, last used and revoked (never a key). ``revoke`` takes
effect on the next request in every worker: nothing caches keys.

The database is ``--database-url`` or ``RETURNLENS_DATABASE_URL`` (the serve default
otherwise), migrated to head first.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

ACTOR = "cli"


def register(sub: Any) -> None:  # argparse._SubParsersAction
    keys = sub.add_parser(
        "keys",
        help="create, list and revoke staff API keys",
        description="Staff API keys (dock, reviewer, admin) on the service's database.",
    )
    inner = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = inner.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("name", help="key name, e.g. dock-1 (letters, digits, _ . : -)")
    create.add_argument("--role", required=True, choices=("dock", "reviewer", "admin"))
    create.set_defaults(handler=_create)
    listing = inner.add_parser("list", help="list keys: name, role, prefix, created, last used")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.set_defaults(handler=_list)
    revoke = inner.add_parser("revoke", help="revoke a key; it stops working at once")
    revoke.add_argument("name")
    revoke.set_defaults(handler=_revoke)
    for p in (create, listing, revoke):
        p.add_argument(
            "--database-url",
            dest="database_url",
            help="default: RETURNLENS_DATABASE_URL, else sqlite:///./var/returnlens.db",
        )


def _database(args: argparse.Namespace) -> Any:
    from serving.commands.service import settings_from_args
    from serving.storage.db import open_database

    return open_database(settings_from_args(args).database_url)


def _create(args: argparse.Namespace) -> int:
    from serving.services import keys

    req = keys.key_request(args.name, args.role)
    db = _database(args)
    try:
        key = keys.create_key(db, req, now=datetime.now(UTC), actor=ACTOR)
    finally:
        db.dispose()
    print(key)
    print(
        f"created {req.role} key {req.name!r}; this is the only time it is shown",
        file=sys.stderr,
    )
    return 0


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


def _list(args: argparse.Namespace) -> int:
    from serving.services import keys

    db = _database(args)
    try:
        rows = keys.list_keys(db)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return 0
    header = ("NAME", "ROLE", "PREFIX", "CREATED", "LAST USED", "REVOKED")
    table = [header] + [
        (
            r.name,
            r.role,
            r.prefix,
            _when(r.created_at),
            _when(r.last_used_at),
            _when(r.revoked_at),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from serving.services import keys

    db = _database(args)
    try:
        keys.revoke_key(db, args.name, now=datetime.now(UTC), actor=ACTOR)
    finally:
        db.dispose()
    print(f"revoked {args.name!r}")
    return 0
