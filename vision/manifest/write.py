"""Dataset manifests: the one JSONL format every labelled photo set is read through.

The format is documented in ``datasets/README.md``. A manifest is data, so it is
validated the way uploads are: every problem in the file is collected and reported
with its line number and a code, and nothing in it can make the reader raise anything
but a :class:`DataError`. Label lists always come from the file (its header, or the
labels seen), never from code constants, because the model card copies them.

This module writes and merges manifests. The package ``vision.manifest`` is the one
import for the whole API (types, reader, writer, importers); its modules import each
other one way only: types <- read <- write <- importers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vision.errors import DataError
from vision.fsio import atomic_write_text
from vision.manifest.read import (
    _check_objects,
    _check_set,
    _inspect,
    _raise_problems,
    _Report,
)
from vision.manifest.types import (
    FORMAT_VERSION,
    KIND,
    Manifest,
    ManifestHeader,
    ManifestRecord,
)

# --------------------------------------------------------------------------- writing


def _rel(path: Path, base: Path) -> str:
    """Relative to the manifest dir when inside it (so the folder can move), else absolute."""
    path = Path(os.path.abspath(base / path))
    return path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path)


def _record_json(r: ManifestRecord, base: Path) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": r.id,
        "image": _rel(r.image, base),
        "grade": r.grade,
        "damage": list(r.damage),
        "category": r.category,
        "sku": r.sku,
        "split": r.split,
    }
    if r.item_id is not None:
        obj["item_id"] = r.item_id
    if r.mask is not None:
        obj["mask"] = _rel(r.mask, base)
    if r.meta:
        obj["meta"] = r.meta
    return obj


def write_manifest(
    path: Path | str, header: ManifestHeader, records: Sequence[ManifestRecord]
) -> None:
    """Check the records against the header, then write atomically (header line first).

    Relative paths in records are taken as relative to the manifest directory. Files are
    not checked here (``validate`` does); split emptiness is not either, so partial
    manifests (for example exported review labels) can be written and merged later.
    """
    path = Path(os.path.abspath(path))
    base = path.parent
    head = {
        "kind": KIND,
        "version": FORMAT_VERSION,
        "grade_labels": list(header.grade_labels),
        "damage_labels": list(header.damage_labels),
        "source": header.source,
        "description": header.description,
    }
    objects = [(1, head)] + [(i + 2, _record_json(r, base)) for i, r in enumerate(records)]
    try:
        lines = [json.dumps(obj, ensure_ascii=False, allow_nan=False) for _, obj in objects]
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"a record's meta is not plain JSON: {exc}", code="invalid_manifest"
        ) from exc
    rep = _Report()
    _check_objects(path, objects, rep, check_files=False, require_splits=False)
    _raise_problems(path, rep.sorted())
    try:
        base.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, "\n".join(lines) + "\n")
    except OSError as exc:
        raise DataError(f"cannot write manifest {path}: {exc}", code="write_failed") from exc


# --------------------------------------------------------------------------- merging


def _merge_grades(
    a: tuple[str, ...], b: tuple[str, ...], names: tuple[str, str]
) -> tuple[str, ...]:
    """The longer list if the shorter is an order-preserving subsequence of it."""
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    it = iter(long)
    if all(g in it for g in short):  # consumes `it`: order-preserving subsequence test
        return long
    raise DataError(
        f"cannot merge {names[1]}: its grade labels {list(b)} conflict with {list(a)} from "
        f"{names[0]} (grades are ordinal: one list must contain the other in the same order)",
        code="label_conflict",
    )


def merge_manifests(
    paths: Sequence[Path | str], out: Path | str | None = None, *, check_files: bool = True
) -> Manifest:
    """Union of manifests; written to ``out`` when given.

    Grade lists must agree in order (a sublist in the same order is fine: car-damage's
    C..E merges into A..E). Damage labels are united in first-seen order; an input with
    masks must keep its damage labels at the same positions (mask bits). Colliding ids
    are refused, never renamed: ids are how review labels and audits refer to photos.
    Inputs may have empty splits; the result must have train and val.
    """
    if not paths:
        raise DataError("merge needs at least one manifest", code="invalid_manifest")
    loaded: list[Manifest] = []
    for p in paths:
        manifest, problems = _inspect(p, check_files, require_splits=False)
        _raise_problems(p, problems)
        assert manifest is not None
        loaded.append(manifest)
    grades = loaded[0].header.grade_labels
    damage = list(loaded[0].header.damage_labels)
    owner: dict[str, Path] = {}
    for m in loaded[1:]:
        grades = _merge_grades(grades, m.header.grade_labels, (str(loaded[0].path), str(m.path)))
    for m in loaded:
        damage += [d for d in m.header.damage_labels if d not in damage]
        labels = list(m.header.damage_labels)
        if any(r.mask for r in m.records) and damage[: len(labels)] != labels:
            raise DataError(
                f"cannot merge {m.path}: its masks encode damage bits in the order "
                f"{labels}, but the merged order is {damage}; put it first or "
                "relabel it",
                code="label_conflict",
            )
        clash = [r.id for r in m.records if r.id in owner]
        if clash:
            raise DataError(
                f"cannot merge {m.path}: {len(clash)} id(s) already used in "
                f"{owner[clash[0]]}, e.g. {clash[:5]}; ids must stay unique",
                code="duplicate_id",
            )
        owner.update((r.id, m.path) for r in m.records)
    header = ManifestHeader(
        grades,
        tuple(damage),
        "+".join(dict.fromkeys(m.header.source for m in loaded if m.header.source)),
        "merge of " + ", ".join(str(m.path) for m in loaded),
    )
    records = tuple(r for m in loaded for r in m.records)
    target = Path(os.path.abspath(out)) if out is not None else loaded[0].path
    rep = _Report()
    _check_set(records, {r.id: i + 2 for i, r in enumerate(records)}, True, rep)
    _raise_problems(target, rep.sorted())
    if out is not None:
        write_manifest(target, header, records)
    return Manifest(target, header, records)
