"""Importers: existing photo sets -> manifests (ImageFolder trees, the ELPV solar cells).

They reference photos in place (or symlink them beside the manifest), build every
record in memory, refuse an import that would be invalid (unmapped folders, empty
train/val), and only then write the file with ``write_manifest``. Splits that are not
given by folders are drawn per class with exact sizes from a seeded RNG, so the same
tree and seed always give the same manifest.
"""

from __future__ import annotations

import csv
import math
import os
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vision.errors import DataError
from vision.manifest.read import sniff_image
from vision.manifest.types import REQUIRED_SPLITS, SPLITS, Manifest, ManifestHeader, ManifestRecord
from vision.manifest.write import write_manifest

ELPV_GRADES = ("p0", "p33", "p67", "p100")
_MAX_LISTED = 20  # paths/rows quoted in one error sentence


def split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(val, test) sizes for a group of n: rounded half up; val never empty when n >= 2."""
    n_val = math.floor(n * val_fraction + 0.5)
    n_test = math.floor(n * test_fraction + 0.5)
    if val_fraction > 0 and n_val == 0 and n >= 2:
        n_val = 1
    if test_fraction > 0 and n_test == 0 and n >= 3:
        n_test = 1
    while n_test > 0 and n_val + n_test >= n:
        n_test -= 1
    while n_val > 0 and n_val >= n:
        n_val -= 1
    return n_val, n_test


def _assign_splits(
    items: Sequence[Any], val_fraction: float, test_fraction: float, key: str
) -> list[str]:
    """Exact per-group split sizes, shuffled by a RNG seeded from ``key`` (deterministic)."""
    n_val, n_test = split_counts(len(items), val_fraction, test_fraction)
    labels = ["val"] * n_val + ["test"] * n_test + ["train"] * (len(items) - n_val - n_test)
    random.Random(key).shuffle(labels)
    return labels


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(
            f"val fraction {val_fraction} and test fraction {test_fraction} must be "
            "in [0, 1) and leave some photos for training",
            code="bad_split",
        )


def _place(src: Path, rel: Path, out: Path, link: bool) -> Path:
    """The path a record points at: the source itself, or a symlink beside the manifest."""
    if not link:
        return Path(os.path.abspath(src))
    dst = out.parent / "images" / rel
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.exists():
            dst.unlink()
        dst.symlink_to(Path(os.path.abspath(src)))
    except OSError as exc:
        raise DataError(f"cannot link {src} to {dst}: {exc}", code="write_failed") from exc
    return dst


def _listing(items: Sequence[Any]) -> str:
    shown = ", ".join(str(i) for i in items[:_MAX_LISTED])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _MAX_LISTED else "")


def _grade_order(
    grade_map: Mapping[str, str], grade_labels: Sequence[str] | None
) -> tuple[str, ...]:
    if not grade_map:
        raise DataError(
            "the folder-to-grade mapping is empty; pass --map FOLDER=GRADE", code="bad_mapping"
        )
    mapped = tuple(dict.fromkeys(grade_map.values()))
    if grade_labels is None:
        return mapped
    labels = tuple(grade_labels)
    dups = sorted(k for k, n in Counter(labels).items() if n > 1)
    missing = [g for g in mapped if g not in labels]
    if dups or missing or not all(labels):
        raise DataError(
            f"grade list {list(labels)} must be unique, non-empty names that "
            f"include every mapped grade (missing: {missing}, repeated: {dups})",
            code="bad_mapping",
        )
    return labels


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


@dataclass(frozen=True)
class _Found:
    split: str | None  # None: assign deterministically
    folder: str
    path: Path


def _scan_classes(base: Path, split: str | None, found: list[_Found], skipped: list[Path]) -> None:
    for entry in sorted(base.iterdir()):
        if _is_hidden(entry) or not entry.is_dir():
            skipped.append(entry)
            continue
        for file in sorted(entry.rglob("*")):
            if file.is_dir():
                continue
            hidden = any(p.startswith(".") for p in file.relative_to(entry).parts)
            if hidden or not sniff_image(file):
                skipped.append(file)
            else:
                found.append(_Found(split, entry.name, file))


def _scan_tree(root: Path, split_dirs: bool) -> tuple[list[_Found], list[Path]]:
    found: list[_Found] = []
    skipped: list[Path] = []
    if not split_dirs:
        _scan_classes(root, None, found, skipped)
        return found, skipped
    dirs = [p for p in sorted(root.iterdir()) if p.is_dir() and not _is_hidden(p)]
    unexpected = [p.name for p in dirs if p.name not in SPLITS]
    if unexpected or not (root / "train").is_dir():
        raise DataError(
            f"{root} should hold train/ (and val/, test/) folders of class "
            f"folders; found {[p.name for p in dirs]}. For a tree of class folders "
            "only, pass --no-split-dirs to split deterministically",
            code="bad_layout",
        )
    skipped += [p for p in sorted(root.iterdir()) if p not in dirs]
    for split in SPLITS:
        if (root / split).is_dir():
            _scan_classes(root / split, split, found, skipped)
    return found, skipped


def _carve_splits(
    found: list[_Found], has_val: bool, val_fraction: float, test_fraction: float, seed: int
) -> list[str]:
    """The split of each found photo: its folder's, or a stratified deterministic draw."""
    splits: list[str] = [f.split or "" for f in found]
    groups: dict[str, list[int]] = {}
    for i, f in enumerate(found):
        # no split folders, or no val/ folder: carve val (and test) out of each class
        if f.split is None or (f.split == "train" and not has_val):
            groups.setdefault(f.folder, []).append(i)
    for folder, idx in groups.items():
        tf = test_fraction if found[idx[0]].split is None else 0.0
        for i, s in zip(
            idx, _assign_splits(idx, val_fraction, tf, f"{seed}/{folder}"), strict=True
        ):
            splits[i] = s
    return splits


def import_folder(
    root: Path | str,
    out: Path | str,
    *,
    grade_map: Mapping[str, str],
    grade_labels: Sequence[str] | None = None,
    category: str = "unknown",
    split_dirs: bool = True,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    link: bool = False,
    sku_from_folder: bool = True,
    id_prefix: str | None = None,
) -> Manifest:
    """Write a manifest for an ImageFolder tree, referencing the photos in place.

    Layout ``{train,val,test}/{class}/*`` (``split_dirs``) or ``{class}/*`` (then a
    stratified, seeded split). Without a ``val/`` folder, ``val_fraction`` of each train
    class becomes val. Files are recognised by their bytes (JPEG/PNG/WebP); anything else
    is skipped and counted in the header's description. ids are ``PREFIX/relative/path``.
    """
    root = Path(os.path.abspath(root))
    out = Path(os.path.abspath(out))
    if not root.is_dir():
        raise DataError(f"{root} is not a folder", code="not_found")
    if not category:
        raise DataError("category must not be empty", code="bad_mapping")
    _check_fractions(val_fraction, test_fraction)
    grades = _grade_order(grade_map, grade_labels)
    found, skipped = _scan_tree(root, split_dirs)
    unmapped = sorted({f.folder for f in found} - set(grade_map))
    if unmapped:
        raise DataError(
            f"folder(s) {unmapped} have no grade in the mapping; add e.g. "
            f"--map {unmapped[0]}=GRADE",
            code="unmapped_folders",
            details={"unmapped": unmapped},
        )
    if not found:
        raise DataError(f"no JPEG, PNG or WebP photos found under {root}", code="no_records")
    splits = _carve_splits(found, (root / "val").is_dir(), val_fraction, test_fraction, seed)
    prefix = id_prefix or root.name
    records = []
    for f, split in zip(found, splits, strict=True):
        rel = f.path.relative_to(root)
        records.append(
            ManifestRecord(
                id=f"{prefix}/{rel.as_posix()}",
                image=_place(f.path, rel, out, link),
                grade=grade_map[f.folder],
                damage=(),
                category=category,
                sku=f.folder if sku_from_folder else category,
                split=split,
                meta={"folder": f.folder},
            )
        )
    note = (
        f"ImageFolder import of {root}: {len(records)} photos, {len(skipped)} non-image "
        f"file(s) skipped" + (f" ({_listing([p.name for p in skipped])})" if skipped else "")
    )
    return _finish(out, ManifestHeader(grades, (), root.name, note), records)


def _finish(out: Path, header: ManifestHeader, records: Sequence[ManifestRecord]) -> Manifest:
    """Refuse an import that would leave train or val empty, else write it."""
    empty = [s for s in REQUIRED_SPLITS if not any(r.split == s for r in records)]
    if empty:
        raise DataError(
            f"the import would leave split(s) {empty} empty; add photos or raise --val-fraction",
            code="empty_split",
        )
    write_manifest(out, header, records)
    return Manifest(out, header, tuple(records))


def _elpv_rows(root: Path) -> list[dict[str, str]]:
    labels = root / "labels.csv"
    try:
        with labels.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            columns = set(reader.fieldnames or ())
    except FileNotFoundError as exc:
        raise DataError(
            f"{labels} does not exist; is {root} the ELPV folder?", code="not_found"
        ) from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {labels}: {exc}", code="invalid_data") from exc
    need = {"path", "defect_probability", "cell_type"}
    if not need <= columns:
        raise DataError(
            f"{labels} must have the columns {sorted(need)}; it has {sorted(columns)}",
            code="invalid_data",
        )
    return rows


def _elpv_level(text: str | None) -> int | None:
    """0..3 for a defect probability of 0, 1/3, 2/3 or 1 (as written: 0.3333 etc.)."""
    try:
        value = float(text or "")
    except ValueError:
        return None
    level = round(value * 3) if math.isfinite(value) else -1
    return level if 0 <= level <= 3 and abs(value * 3 - level) < 0.05 else None


def import_elpv(
    root: Path | str,
    out: Path | str,
    *,
    grade_labels: Sequence[str] = ELPV_GRADES,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    link: bool = False,
    id_prefix: str = "elpv",
) -> Manifest:
    """Manifest for the ELPV solar-cell set: 4 ordinal grades from the defect probability.

    category and sku are the cell type (mono/poly); the split is stratified by
    (grade, cell type), 70/15/15 by default, and deterministic for a seed.
    """
    root = Path(os.path.abspath(root))
    out = Path(os.path.abspath(out))
    grades = tuple(grade_labels)
    if len(grades) != 4 or len(set(grades)) != 4 or not all(grades):
        raise DataError(
            f"ELPV needs 4 distinct grade names (for 0, 1/3, 2/3, 1), got {list(grades)}",
            code="bad_mapping",
        )
    _check_fractions(val_fraction, test_fraction)
    bad, missing, ok = [], [], []
    for number, row in enumerate(_elpv_rows(root), start=2):
        level = _elpv_level(row.get("defect_probability"))
        rel, cell = (row.get("path") or "").strip(), (row.get("cell_type") or "").strip()
        if level is None or not rel or not cell:
            bad.append(number)
        elif not (root / rel).is_file():
            missing.append(rel)
        else:
            ok.append((rel, level, cell, row["defect_probability"]))
    if bad or missing:
        raise DataError(
            f"labels.csv: bad rows {_listing(bad)}; missing images {_listing(missing)}",
            code="invalid_data",
            details={"bad_rows": bad, "missing": missing},
        )
    if not ok:
        raise DataError(f"{root / 'labels.csv'} lists no photos", code="no_records")
    ok.sort()
    groups: dict[tuple[int, str], list[int]] = {}
    for i, (_, level, cell, _) in enumerate(ok):
        groups.setdefault((level, cell), []).append(i)
    splits = [""] * len(ok)
    for (level, cell), idx in sorted(groups.items()):
        key = f"{seed}/{level}/{cell}"
        for i, s in zip(idx, _assign_splits(idx, val_fraction, test_fraction, key), strict=True):
            splits[i] = s
    records = [
        ManifestRecord(
            id=f"{id_prefix}/{rel}",
            image=_place(root / rel, Path(rel), out, link),
            grade=grades[level],
            damage=(),
            category=cell,
            sku=cell,
            split=split,
            meta={"defect_probability": float(prob)},
        )
        for (rel, level, cell, prob), split in zip(ok, splits, strict=True)
    ]
    note = (
        f"ELPV import of {root}: {len(records)} cells; grades {list(grades)} = defect "
        "probability 0, 1/3, 2/3, 1; split stratified by grade and cell type"
    )
    return _finish(out, ManifestHeader(grades, (), "elpv", note), records)
