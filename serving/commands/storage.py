"""``returnlens storage gc``: find (and with ``--delete`` remove) photo files no row
references, and temporary files left by killed writes (``serving.storage.gc``).

A dry run by default: it lists what it would remove. Files younger than ``--min-age``
minutes (default 60) are never touched: they may belong to an upload in flight whose row
has not committed yet. The database and photo store are the service's
(``RETURNLENS_DATABASE_URL``; ``RETURNLENS_PHOTO_DIR``, or the S3 bucket when
``RETURNLENS_PHOTO_STORE=s3``) unless the flags name others (``--photo-dir``: a folder).
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:  # argparse._SubParsersAction
    storage = sub.add_parser("storage", help="photo store housekeeping")
    inner = storage.add_subparsers(dest="storage_command", metavar="ACTION", required=True)
    gc = inner.add_parser(
        "gc",
        help="find photo files no row references (dry run; --delete removes them)",
        description="List photo files that no database row references and temporary files "
        "left by killed writes; remove them only with --delete.",
    )
    gc.add_argument("--database-url", dest="database_url", help="default: the service's")
    gc.add_argument("--photo-dir", dest="photo_dir", type=Path, help="default: the service's")
    gc.add_argument(
        "--min-age",
        dest="min_age",
        type=float,
        default=60.0,
        metavar="MINUTES",
        help="keep files younger than this (default 60): an upload may be in flight",
    )
    gc.add_argument("--delete", action="store_true", help="remove them (default: dry run)")
    gc.add_argument("--json", action="store_true", help="print the report as JSON")
    gc.set_defaults(handler=_gc)


def _gc(args: argparse.Namespace) -> int:
    from serving.commands.service import settings_from_args
    from serving.storage.db import open_database
    from serving.storage.gc import collect_garbage
    from serving.storage.photostore import PhotoStore, command_photos
    from vision.errors import ConfigError

    if args.min_age < 0:
        raise ConfigError("--min-age must be 0 or more minutes", code="invalid_setting")
    settings = settings_from_args(args)
    photos = command_photos(settings, args.photo_dir)  # the folder, or the S3 bucket
    if isinstance(photos, Path):
        if not photos.is_dir():
            raise ConfigError(f"there is no photo folder {photos}", code="storage_unavailable")
        photos = PhotoStore(photos)
    photo_dir = args.photo_dir or settings.photo_dir  # the heatmap cache sits beside it
    db = open_database(settings.database_url, migrate=False)
    try:
        report = collect_garbage(
            db,
            photos,
            min_age=timedelta(minutes=args.min_age),
            delete=args.delete,
        )
    finally:
        db.dispose()
    trimmed = _trim_heatmaps(photo_dir, settings.heatmap_cache_mib) if args.delete else []
    if args.json:
        print(
            json.dumps(
                {
                    "dry_run": report.dry_run,
                    "files": report.files,
                    "referenced": report.referenced,
                    "orphans": [str(p) for p in report.orphans],
                    "orphan_bytes": report.orphan_bytes,
                    "temp_files": [str(p) for p in report.temp_files],
                    "young": report.young,
                    "removed": [str(p) for p in report.removed],
                    "heatmaps_trimmed": len(trimmed),
                },
                indent=2,
            )
        )
    else:
        for path in (*report.orphans, *report.temp_files):
            print(path)
        print("\n".join(report.lines()))
        if args.delete:
            print(f"heatmap cache: {len(trimmed)} least recently used file(s) removed")
    return 0


def _trim_heatmaps(photo_dir: Path, max_mib: int) -> list[Path]:
    """The rendered-heatmap cache beside the photo store, trimmed to its configured size."""
    from serving.storage.heatmap_cache import HeatmapCache, cache_root_for

    return HeatmapCache(cache_root_for(photo_dir), max_bytes=max_mib * 1024 * 1024).trim()
