"""``returnlens dataset ...``: validate, import and merge dataset manifests.

Everything here is torch-free (``vision.manifest``), so a serving install can check
a manifest. Other areas add subcommands to the group through ``DATASET_COMMAND_MODULES``:
each listed module exposes ``register_dataset(dsub)`` taking the group's subparsers
(``export-reviewed`` plugs in this way).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vision.errors import DataError
from vision.manifest import (
    ELPV_GRADES,
    Manifest,
    import_elpv,
    import_folder,
    inspect_manifest,
    merge_manifests,
)


def register(sub: Any) -> Any:  # argparse._SubParsersAction
    """Adds ``dataset`` and returns its sub-parsers, so the CLI root can add the
    subcommands other areas own (``export-reviewed`` lives with the service's storage)."""
    parser = sub.add_parser(
        "dataset",
        help="validate, import and merge dataset manifests",
        description="Dataset manifests (JSONL; format in datasets/README.md).",
    )
    dsub = parser.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND", required=True)
    adders: Sequence[Callable[[Any], None]] = (
        _add_validate,
        _add_import_folder,
        _add_import_elpv,
        _add_merge,
    )
    for add in adders:
        add(dsub)
    return dsub


# --------------------------------------------------------------------------- validate


def _add_validate(dsub: Any) -> None:
    p = dsub.add_parser("validate", help="list every problem in a manifest and its counts")
    p.add_argument("path", type=Path, help="manifest .jsonl")
    p.add_argument(
        "--no-files",
        dest="check_files",
        action="store_false",
        help="do not check that image and mask files exist and are images",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    manifest, problems = inspect_manifest(args.path, check_files=args.check_files)
    errors = sum(p.is_error for p in problems)
    warnings = len(problems) - errors
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(args.path),
                    "valid": errors == 0,
                    "errors": errors,
                    "warnings": warnings,
                    "problems": [
                        {
                            "line": p.line,
                            "id": p.record_id,
                            "code": p.code,
                            "message": p.message,
                            "severity": p.severity,
                        }
                        for p in problems
                    ],
                    "summary": manifest.summary() if manifest is not None else None,
                },
                indent=2,
            )
        )
        return 1 if errors else 0
    for p in problems:
        print(p.format())
    if manifest is not None and manifest.records:
        if problems:
            print()
        _print_summary(manifest, valid_only=errors > 0)
    verdict = "valid" if errors == 0 else "INVALID"
    print(f"{args.path}: {verdict} ({errors} error(s), {warnings} warning(s))")
    return 1 if errors else 0


def _print_summary(manifest: Manifest, *, valid_only: bool = False) -> None:
    """A split x grade table, then damage and category counts."""
    s = manifest.summary()
    grades = list(s["grade_labels"])
    cols = ["split", "records", *grades] + (["unlabelled"] if s["unlabelled"] else [])
    rows = []
    for split, c in [
        *s["splits"].items(),
        ("total", {"records": s["records"], "grades": s["grades"], "unlabelled": s["unlabelled"]}),
    ]:
        cells = [split, c["records"], *(c["grades"][g] for g in grades)]
        rows.append(cells + ([c["unlabelled"]] if s["unlabelled"] else []))
    widths = [max(len(str(v)) for v in col) for col in zip(cols, *rows, strict=True)]
    what = "valid records" if valid_only else "records"
    print(
        f"{s['records']} {what}; source {s['source'] or '-'}; {s['skus']} SKU(s), "
        f"{s['items']} item id(s)"
    )
    for row in [cols, *rows]:
        print(
            "  ".join(
                str(v).rjust(w) if i else str(v).ljust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    damage = ", ".join(f"{k} {v}" for k, v in s["damage"].items()) or "no damage labels"
    print(f"damage: {damage}; no damage: {s['no_damage']}")
    print("categories: " + ", ".join(f"{k} {v}" for k, v in s["categories"].items()))


# --------------------------------------------------------------------------- importers


def _add_import_folder(dsub: Any) -> None:
    p = dsub.add_parser(
        "import-folder",
        help="manifest for an ImageFolder tree {train,val,test}/{class}/*",
        description="Reference the photos of an ImageFolder tree in place (nothing is "
        "copied) and write a manifest. Folder names map to grades with --map or --map-file.",
    )
    p.add_argument("root", type=Path, help="tree root")
    p.add_argument("--out", type=Path, required=True, help="manifest to write (.jsonl)")
    p.add_argument(
        "--map",
        dest="maps",
        action="append",
        default=[],
        metavar="FOLDER=GRADE",
        help="folder name to grade (repeat); its order is the grade order",
    )
    p.add_argument("--map-file", type=Path, help="YAML/JSON mapping {folder: grade}")
    p.add_argument(
        "--grades", help="comma-separated grade order, best first (default: the mapping's order)"
    )
    p.add_argument("--category", default="unknown", help="item category of every photo")
    p.add_argument(
        "--no-split-dirs",
        dest="split_dirs",
        action="store_false",
        help="the root holds class folders directly: split deterministically",
    )
    p.add_argument(
        "--sku-from-folder",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sku = class folder name (default); off: sku = category",
    )
    p.add_argument("--id-prefix", help="record id prefix (default: the root folder's name)")
    _add_split_options(p, 0.1, 0.1)
    p.set_defaults(handler=_import_folder)


def _add_split_options(p: argparse.ArgumentParser, val: float, test: float) -> None:
    p.add_argument(
        "--val-fraction",
        type=float,
        default=val,
        help=f"val share per class when it is drawn (default {val})",
    )
    p.add_argument(
        "--test-fraction",
        type=float,
        default=test,
        help=f"test share per class when it is drawn (default {test})",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the deterministic split")
    p.add_argument(
        "--link",
        action="store_true",
        help="symlink the photos under OUT_DIR/images and use relative paths",
    )


def parse_mapping(pairs: Sequence[str], map_file: Path | None = None) -> dict[str, str]:
    """Folder -> grade from a YAML/JSON file, then FOLDER=GRADE pairs (which override)."""
    mapping: dict[str, str] = {}
    if map_file is not None:
        import yaml  # lazy: only this option needs it

        try:
            data = yaml.safe_load(map_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise DataError(
                f"cannot read mapping file {map_file}: {exc}", code="bad_mapping"
            ) from exc
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in data.items()
        ):
            raise DataError(
                f"mapping file {map_file} must be a mapping of folder names to "
                "grade names, e.g. 'minor: C_good'",
                code="bad_mapping",
            )
        mapping.update(data)
    for pair in pairs:
        folder, sep, grade = pair.partition("=")
        if not sep or not folder.strip() or not grade.strip():
            raise DataError(f"--map {pair!r} must look like FOLDER=GRADE", code="bad_mapping")
        mapping[folder.strip()] = grade.strip()
    return mapping


def _grades(text: str | None) -> list[str] | None:
    return None if text is None else [g.strip() for g in text.split(",")]


def _import_folder(args: argparse.Namespace) -> int:
    manifest = import_folder(
        args.root,
        args.out,
        grade_map=parse_mapping(args.maps, args.map_file),
        grade_labels=_grades(args.grades),
        category=args.category,
        split_dirs=args.split_dirs,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        link=args.link,
        sku_from_folder=args.sku_from_folder,
        id_prefix=args.id_prefix,
    )
    return _report_written(manifest)


def _report_written(manifest: Manifest) -> int:
    print(manifest.header.description)
    _print_summary(manifest)
    print(f"wrote {manifest.path}")
    return 0


def _add_import_elpv(dsub: Any) -> None:
    p = dsub.add_parser(
        "import-elpv",
        help="manifest for the ELPV solar-cell set (labels.csv)",
        description="4 ordinal grades from the defect probability (0, 1/3, 2/3, 1), "
        "category = cell type, split stratified by grade and cell type.",
    )
    p.add_argument("root", type=Path, help="folder holding labels.csv and images/")
    p.add_argument("--out", type=Path, required=True, help="manifest to write (.jsonl)")
    p.add_argument(
        "--grades",
        default=",".join(ELPV_GRADES),
        help="4 comma-separated grade names, defect-free first",
    )
    _add_split_options(p, 0.15, 0.15)
    p.set_defaults(handler=_import_elpv)


def _import_elpv(args: argparse.Namespace) -> int:
    manifest = import_elpv(
        args.root,
        args.out,
        grade_labels=_grades(args.grades) or (),
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        link=args.link,
    )
    return _report_written(manifest)


# --------------------------------------------------------------------------- merge


def _add_merge(dsub: Any) -> None:
    p = dsub.add_parser("merge", help="union of manifests (compatible labels, unique ids)")
    p.add_argument("paths", type=Path, nargs="+", help="manifests to merge, in order")
    p.add_argument("--out", type=Path, required=True, help="merged manifest to write")
    p.add_argument(
        "--no-files",
        dest="check_files",
        action="store_false",
        help="do not check that the inputs' files exist",
    )
    p.set_defaults(handler=_merge)


def _merge(args: argparse.Namespace) -> int:
    manifest = merge_manifests(args.paths, args.out, check_files=args.check_files)
    print(manifest.header.description)
    _print_summary(manifest)
    print(f"wrote {manifest.path}")
    return 0
