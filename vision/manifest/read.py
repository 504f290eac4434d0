"""Reading and validating manifests: every problem collected, with line and code.

Nothing in a manifest can make the reader raise anything but a :class:`DataError`.
Use it through ``vision.manifest``.
"""

from __future__ import annotations

import codecs
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vision.errors import DataError
from vision.manifest.types import (
    _HEADER_KEYS,
    _RECORD_KEYS,
    FORMAT_VERSION,
    KIND,
    REQUIRED_SPLITS,
    SPLITS,
    Manifest,
    ManifestHeader,
    ManifestRecord,
    Problem,
)

# --------------------------------------------------------------------------- reading


class _Report:
    """Collects problems; sorted by line at the end (set-level problems last)."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def error(self, line: int | None, rid: str | None, code: str, message: str) -> None:
        self.problems.append(Problem(line, rid, code, message))

    def warn(self, line: int | None, rid: str | None, code: str, message: str) -> None:
        self.problems.append(Problem(line, rid, code, message, "warning"))

    def sorted(self) -> list[Problem]:
        return sorted(self.problems, key=lambda p: (p.line is None, p.line or 0))


def _read_objects(path: Path, rep: _Report) -> list[tuple[int, Any]] | None:
    """The file's non-blank lines as (line number, parsed JSON); None if unreadable."""
    try:
        if not path.exists():
            rep.error(None, None, "missing_manifest", f"manifest {path} does not exist")
            return None
        if not path.is_file():
            rep.error(
                None,
                None,
                "not_a_file",
                f"{path} is a directory or special file, not a JSONL manifest",
            )
            return None
        data = path.read_bytes()
    except (OSError, ValueError) as exc:
        rep.error(None, None, "unreadable_manifest", f"cannot read {path}: {exc}")
        return None
    data = data.removeprefix(codecs.BOM_UTF8)
    if not data.strip():
        rep.error(
            None,
            None,
            "empty_manifest",
            f"{path} is empty; a manifest needs a header line and one JSON object per photo",
        )
        return None
    if b"\x00" in data:
        rep.error(None, None, "not_text", f"{path} is a binary file, not a UTF-8 JSONL manifest")
        return None
    objects: list[tuple[int, Any]] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            rep.error(number, None, "bad_encoding", f"line is not UTF-8 (byte {exc.start + 1})")
            continue
        try:
            objects.append((number, json.loads(text)))
        except json.JSONDecodeError as exc:
            rep.error(
                number,
                None,
                "malformed_json",
                f"line is not valid JSON: {exc.msg} at column {exc.colno}",
            )
        except (ValueError, RecursionError) as exc:
            rep.error(number, None, "malformed_json", f"line is not valid JSON: {exc}")
    return objects


def _label_list(line: int, obj: dict[str, Any], key: str, rep: _Report) -> tuple[str, ...] | None:
    if key not in obj:
        rep.error(line, None, "missing_field", f"header lacks {key!r} (a list of label names)")
        return None
    value = obj[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        rep.error(
            line,
            None,
            "wrong_type",
            f"header {key!r} must be a list of non-empty strings, got {value!r:.80}",
        )
        return None
    dups = sorted(k for k, n in Counter(value).items() if n > 1)
    if dups:
        rep.error(line, None, "duplicate_label", f"header {key!r} lists {dups} more than once")
    return tuple(dict.fromkeys(value))  # keep checking records against the unique labels


def _parse_header(
    line: int, obj: dict[str, Any], rep: _Report
) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None, str, str]:
    """Header label lists (None = invalid, fall back to the labels seen), source, description."""
    if obj.get("kind") != KIND:
        rep.error(
            line, None, "bad_header", f"header 'kind' must be {KIND!r}, got {obj.get('kind')!r:.80}"
        )
    version = obj.get("version", FORMAT_VERSION)
    if isinstance(version, bool) or version != FORMAT_VERSION:
        rep.error(
            line,
            None,
            "unsupported_version",
            f"manifest version {version!r:.40} is not "
            f"supported (this reader reads version {FORMAT_VERSION})",
        )
    texts = []
    for key in ("source", "description"):
        value = obj.get(key, "")
        if not isinstance(value, str):
            rep.error(line, None, "wrong_type", f"header {key!r} must be a string")
            value = ""
        texts.append(value)
    for key in obj:
        if key not in _HEADER_KEYS:
            rep.warn(
                line,
                None,
                "unknown_field",
                f"header field {key!r} is not part of the format and is ignored",
            )
    grades = _label_list(line, obj, "grade_labels", rep)
    damage = _label_list(line, obj, "damage_labels", rep)
    return grades, damage, texts[0], texts[1]


@dataclass
class _Fields:
    """A record's typed fields; a field that failed its type check is absent."""

    line: int
    rid: str | None
    ok: bool
    values: dict[str, Any]


# (key, required, allowed kind): "str" = non-empty string, "str?" = that or null,
# "list" = list of non-empty strings, "dict?" = object or null.
_FIELD_RULES = (
    ("id", True, "str"),
    ("image", True, "str"),
    ("grade", True, "str?"),
    ("damage", True, "list"),
    ("category", True, "str"),
    ("sku", True, "str"),
    ("split", True, "str"),
    ("item_id", False, "str?"),
    ("mask", False, "str?"),
    ("meta", False, "dict?"),
)
_KIND_WORDS = {
    "str": "a non-empty string",
    "str?": "a non-empty string or null",
    "list": "a list of non-empty strings",
    "dict?": "a JSON object or null",
}


def _type_ok(value: Any, kind: str) -> bool:
    if value is None:
        return kind.endswith("?")
    if kind.startswith("str"):
        return isinstance(value, str) and value != ""
    if kind == "list":
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    return isinstance(value, dict)


def _type_record(line: int, obj: Any, rep: _Report) -> _Fields | None:
    if not isinstance(obj, dict):
        rep.error(
            line, None, "not_an_object", f"line must be a JSON object, got {type(obj).__name__}"
        )
        return None
    rid = obj.get("id") if isinstance(obj.get("id"), str) and obj.get("id") else None
    fields = _Fields(line, rid, True, {})
    for key, required, kind in _FIELD_RULES:
        if key not in obj:
            if required:
                rep.error(line, rid, "missing_field", f"record lacks the required field {key!r}")
                fields.ok = False
            continue
        if not _type_ok(obj[key], kind):
            rep.error(
                line,
                rid,
                "wrong_type",
                f"{key!r} must be {_KIND_WORDS[kind]}, got {obj[key]!r:.80}",
            )
            fields.ok = False
            continue
        fields.values[key] = obj[key]
    for key in obj:
        if key not in _RECORD_KEYS:
            rep.warn(
                line,
                rid,
                "unknown_field",
                f"field {key!r} is not part of the format and is ignored (typo?)",
            )
    dups = sorted(k for k, n in Counter(fields.values.get("damage", [])).items() if n > 1)
    if dups:
        rep.warn(line, rid, "duplicate_damage", f"damage lists {dups} more than once")
    return fields


_MAGIC = ((b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"))


def sniff_image(path: Path) -> str | None:
    """'jpeg' | 'png' | 'webp' from the first bytes (never the name); None otherwise."""
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
    except (OSError, ValueError):
        return None
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def _resolve(base: Path, text: str) -> Path:
    return Path(os.path.abspath(base / text))


def _check_file(f: _Fields, key: str, base: Path, rep: _Report) -> None:
    path = _resolve(base, f.values[key])
    what = "image" if key == "image" else "mask"
    try:
        is_file = path.is_file()
    except (OSError, ValueError):
        is_file = False
    if not is_file:
        rep.error(f.line, f.rid, "missing_file", f"{what} file {path} does not exist")
        f.ok = False
        return
    kind = sniff_image(path)
    if kind is None or (key == "mask" and kind != "png"):
        need = "a PNG" if key == "mask" else "a JPEG, PNG or WebP image"
        rep.error(f.line, f.rid, "not_an_image", f"{what} file {path} is not {need}")
        f.ok = False


def _check_labels(
    f: _Fields,
    grades: tuple[str, ...],
    damage: tuple[str, ...],
    seen_ids: dict[str, int],
    rep: _Report,
) -> None:
    v = f.values
    grade = v.get("grade")
    if isinstance(grade, str) and grade not in grades:
        rep.error(
            f.line,
            f.rid,
            "unknown_grade",
            f"grade {grade!r} is not one of the grade labels {list(grades)}",
        )
        f.ok = False
    unknown = [d for d in v.get("damage", []) if d not in damage]
    if unknown:
        rep.error(
            f.line,
            f.rid,
            "unknown_damage",
            f"damage {unknown} not in the damage labels {list(damage)}",
        )
        f.ok = False
    split = v.get("split")
    if split is not None and split not in SPLITS:
        rep.error(f.line, f.rid, "bad_split", f"split {split!r} must be one of {list(SPLITS)}")
        f.ok = False
    if f.rid is not None:
        if f.rid in seen_ids:
            rep.error(
                f.line,
                f.rid,
                "duplicate_id",
                f"id {f.rid!r} was already used on line {seen_ids[f.rid]}",
            )
            f.ok = False
        else:
            seen_ids[f.rid] = f.line


def _to_record(f: _Fields, base: Path) -> ManifestRecord:
    v = f.values
    return ManifestRecord(
        id=v["id"],
        image=_resolve(base, v["image"]),
        grade=v["grade"],
        damage=tuple(v["damage"]),
        category=v["category"],
        sku=v["sku"],
        split=v["split"],
        item_id=v.get("item_id"),
        mask=_resolve(base, v["mask"]) if v.get("mask") else None,
        meta=dict(v.get("meta") or {}),
    )


def _check_set(
    records: Sequence[ManifestRecord], lines: Mapping[str, int], require_splits: bool, rep: _Report
) -> None:
    """Problems that only show across records: empty splits and leaks between splits."""
    if not records:
        return
    present = Counter(r.split for r in records)
    for split in SPLITS:
        if present.get(split, 0) == 0 and (require_splits or split == "test"):
            if split in REQUIRED_SPLITS:
                rep.error(
                    None,
                    None,
                    "empty_split",
                    f"split {split!r} has no records; train and val must both be non-empty",
                )
            else:
                rep.warn(
                    None,
                    None,
                    "empty_split",
                    "split 'test' has no records; keep a test split for the final evaluation",
                )
    first: dict[Path, ManifestRecord] = {}
    item_split: dict[str, ManifestRecord] = {}
    for r in records:
        other = first.setdefault(r.image, r)
        if other is not r:
            where = f"record {other.id!r} (line {lines[other.id]})"
            if other.split != r.split:
                rep.error(
                    lines[r.id],
                    r.id,
                    "split_leak",
                    f"image {r.image} is also used by {where} in split {other.split!r}",
                )
            else:
                rep.warn(
                    lines[r.id], r.id, "duplicate_image", f"image {r.image} is also used by {where}"
                )
        if r.item_id is not None:
            seen = item_split.setdefault(r.item_id, r)
            if seen.split != r.split:
                rep.error(
                    lines[r.id],
                    r.id,
                    "split_leak",
                    f"item {r.item_id!r} is in split "
                    f"{r.split!r} here but in {seen.split!r} for record {seen.id!r}",
                )


def _check_objects(
    path: Path,
    objects: Sequence[tuple[int, Any]],
    rep: _Report,
    *,
    check_files: bool,
    require_splits: bool,
) -> Manifest:
    """Every content check; returns a Manifest of the records that passed them all."""
    base = path.parent
    grades: tuple[str, ...] | None = None
    damage: tuple[str, ...] | None = None
    source = description = ""
    body = list(objects)
    if body and isinstance(body[0][1], dict) and "kind" in body[0][1]:
        grades, damage, source, description = _parse_header(body[0][0], body[0][1], rep)
        body = body[1:]
    typed: list[_Fields] = []
    for line, obj in body:
        if isinstance(obj, dict) and "kind" in obj:
            rep.error(
                line,
                None,
                "misplaced_header",
                "a header object may only be the first line of the manifest",
            )
            continue
        fields = _type_record(line, obj, rep)
        if fields is not None:
            typed.append(fields)
    if grades is None:
        grades = tuple(sorted({g for f in typed if isinstance(g := f.values.get("grade"), str)}))
    if damage is None:
        damage = tuple(sorted({d for f in typed for d in f.values.get("damage", [])}))
    seen_ids: dict[str, int] = {}
    for f in typed:
        _check_labels(f, grades, damage, seen_ids, rep)
        for key in ("image", "mask"):
            if check_files and f.values.get(key):
                _check_file(f, key, base, rep)
    if not typed:
        rep.error(None, None, "no_records", "the manifest has no photo records")
    records = [_to_record(f, base) for f in typed if f.ok]
    _check_set(records, {f.rid: f.line for f in typed if f.ok and f.rid}, require_splits, rep)
    header = ManifestHeader(grades, damage, source, description)
    return Manifest(path, header, tuple(records))


def _inspect(
    path: Path | str, check_files: bool, require_splits: bool
) -> tuple[Manifest | None, list[Problem]]:
    path = Path(os.path.abspath(path))
    rep = _Report()
    objects = _read_objects(path, rep)
    if objects is None:
        return None, rep.sorted()
    manifest = _check_objects(
        path, objects, rep, check_files=check_files, require_splits=require_splits
    )
    return manifest, rep.sorted()


def inspect_manifest(
    path: Path | str, *, check_files: bool = True
) -> tuple[Manifest | None, list[Problem]]:
    """Problems plus a Manifest of the records that are valid (None if unreadable)."""
    return _inspect(path, check_files, require_splits=True)


def validate_manifest(path: Path | str, *, check_files: bool = True) -> list[Problem]:
    """Every problem in the manifest (errors and warnings); never raises for content."""
    return inspect_manifest(path, check_files=check_files)[1]


def _raise_problems(path: Path | str, problems: Sequence[Problem]) -> None:
    errors = [p for p in problems if p.is_error]
    if not errors:
        return
    shown = "; ".join(p.format() for p in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    raise DataError(
        f"manifest {path} has {len(errors)} problem(s): {shown}{more}; run "
        f"'returnlens dataset validate {path}' to list them all",
        code="invalid_manifest",
        details={"problems": [asdict(p) for p in problems]},
    )


def load_manifest(path: Path | str, *, check_files: bool = True) -> Manifest:
    """The manifest, or DataError listing ALL its problems in details["problems"]."""
    manifest, problems = _inspect(path, check_files, require_splits=True)
    _raise_problems(path, problems)
    assert manifest is not None  # no errors means the file was read
    return manifest
