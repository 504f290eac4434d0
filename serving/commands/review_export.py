"""``returnlens dataset export-reviewed``: reviewer verdicts -> a training manifest.

Torch-free (it reads the service's database and copies photo files), so it runs on a
serving install next to the database. Defaults come from the same ``RETURNLENS_*``
settings the service uses, so on the service host ``returnlens dataset export-reviewed
--out DIR`` needs no other flag.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from serving.storage.review_export import DEFAULT_VERDICTS, VERDICTS, ExportOptions, export_reviewed


def register_dataset(dsub: Any) -> None:  # the "dataset" group's subparsers
    p = dsub.add_parser(
        "export-reviewed",
        help="write reviewed returns/inspections as a training manifest",
        description="Export the photos that reviewers labelled (approved or corrected) as "
        "a manifest (OUT/manifest.jsonl + OUT/images/) that `returnlens train "
        "--manifest` accepts, alone or merged with other manifests.",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--database-url",
        dest="database_url",
        help="the service's database (default: RETURNLENS_DATABASE_URL or "
        "sqlite:///./var/returnlens.db)",
    )
    p.add_argument(
        "--photo-dir",
        dest="photo_dir",
        type=Path,
        help="the service's photo store (default: RETURNLENS_PHOTO_DIR or ./var/photos)",
    )
    p.add_argument(
        "--verdicts",
        default=",".join(DEFAULT_VERDICTS),
        help=f"comma-separated verdicts to export, of {', '.join(VERDICTS)} "
        f"(default {','.join(DEFAULT_VERDICTS)})",
    )
    p.add_argument(
        "--include-failed-quality",
        action="store_true",
        help="also export photos that failed the quality gate",
    )
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--test-fraction", type=float, default=0.0)
    p.add_argument(
        "--damage-threshold",
        type=float,
        default=0.5,
        help="model damage probability that counts as present for approvals",
    )
    p.add_argument(
        "--labels-from",
        dest="labels_from",
        type=Path,
        help="a model .onnx or manifest whose label lists (and order) to use "
        "instead of the lists stored with the photos (needed only for "
        "photos stored before those lists, on PostgreSQL)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from serving.settings import Settings
    from serving.storage.photostore import command_photos

    settings = Settings()
    database_url = args.database_url or settings.database_url
    photo_dir = command_photos(settings, args.photo_dir)  # the folder, or the S3 bucket
    options = ExportOptions(
        verdicts=tuple(v.strip() for v in args.verdicts.split(",") if v.strip()),
        include_failed_quality=args.include_failed_quality,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        damage_threshold=args.damage_threshold,
        labels_from=args.labels_from,
    )
    report = export_reviewed(database_url, photo_dir, args.out, options)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    splits = ", ".join(f"{k} {v}" for k, v in sorted(report.splits.items()))
    grades = ", ".join(f"{k} {v}" for k, v in sorted(report.grades.items()))
    print(
        f"exported {report.records} photo(s) of {report.items} item(s) from "
        f"{report.reviews} reviewed item(s) -> {report.manifest}"
    )
    print(f"  splits: {splits}")
    print(f"  grades: {grades}")
    if report.skipped:
        print("  skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(report.skipped.items())))
    return 0
