"""Reviewer verdicts -> a training manifest: the labels people corrected close the loop.

``export_reviewed`` reads the service's database (read-only) and writes a manifest
(``datasets/README.md`` format) plus a copy of every labelled photo, so ``returnlens
train --manifest OUT/manifest.jsonl`` can fine-tune on it, alone or merged with another
manifest.

Which verdicts become labels (the latest verdict per item wins):

- ``correct``: the reviewer's grade and damage labels. A correction that names only
  one of them keeps the model's value for the other.
- ``approve``: the reviewer accepted the model's reading, so the model's grade and its
  damage labels (probability >= ``damage_threshold``) become the label. Leave
  ``approve`` out of ``verdicts`` to export corrections only.
- ``reject`` is a decision about the return (fraud, policy), not about the condition;
  it is exported only when asked for and only with a grade.

Every photo the verdict covers becomes one record, except photos that failed the
quality gate (blurred, dark: they would teach the model from unusable input) unless
``include_failed_quality``. Shopper and dock photos of one return share an ``item_id``
(the return id), so a split never separates them. The split is stratified by grade and
stable: within each grade, items ranked by a hash of their id fill test, then val, then
train, in each split's share (so every grade trains); on very small exports one item is
moved so that train and val are both non-empty, which training requires.

Label lists come from data, never from code: from ``labels_from`` (a model ``.onnx``
whose card names them, or a manifest whose header does) when given, else from the
ordered label lists stored with each photo's scores (the grading model's card order).
Photos stored before those lists existed fall back to the key order of their stored
probabilities, which SQLite keeps but PostgreSQL JSONB does not: there, such photos
need ``labels_from``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.storage.photostore import PhotoStorage, PhotoStore
from vision.errors import DataError
from vision.fsio import atomic_copy, atomic_write_bytes
from vision.manifest import ManifestHeader, ManifestRecord, split_counts, write_manifest

VERDICTS = ("approve", "reject", "correct")
DEFAULT_VERDICTS = ("correct", "approve")
_EXT = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}


@dataclass(frozen=True)
class ExportOptions:
    verdicts: tuple[str, ...] = DEFAULT_VERDICTS
    include_failed_quality: bool = False
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    damage_threshold: float = 0.5
    labels_from: Path | None = None


@dataclass(frozen=True)
class ExportReport:
    manifest: Path
    records: int
    items: int
    reviews: int
    splits: dict[str, int]
    grades: dict[str, int]
    skipped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": str(self.manifest),
            "records": self.records,
            "items": self.items,
            "reviews": self.reviews,
            "splits": self.splits,
            "grades": self.grades,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class _Photo:
    """What the export needs of a stored photo (plain data, read inside the session)."""

    id: str
    role: str
    digest: str
    media_type: str
    quality_passed: bool
    grade_probs: dict[str, float]
    damage_probs: dict[str, float]
    # The model's label order as stored with the scores; None on rows older than that.
    grade_labels: tuple[str, ...] | None = None
    damage_labels: tuple[str, ...] | None = None

    @classmethod
    def of(cls, row: Any) -> _Photo:
        from serving.storage.label_order import stored_label_order

        scores = row.scores or {}
        return cls(
            id=row.id,
            role=row.role,
            digest=row.digest,
            media_type=row.media_type,
            quality_passed=bool((row.quality or {}).get("passed", True)),
            grade_probs=dict(scores.get("grade_probs", {})),
            damage_probs=dict(scores.get("damage_probs", {})),
            grade_labels=stored_label_order(scores, kind="grade"),
            damage_labels=stored_label_order(scores, kind="damage"),
        )


@dataclass(frozen=True)
class _Label:
    """One reviewed item: its label and the photos it covers."""

    review_id: str
    reviewer: str
    verdict: str
    subject_type: str
    subject_id: str
    item_id: str
    sku: str
    category: str
    grade: str
    damage: tuple[str, ...]
    photo_ids: tuple[str, ...]
    model_version: str | None
    model_grade: str | None
    reviewed_at: datetime
    note: str | None


def _check_options(options: ExportOptions) -> None:
    unknown = [v for v in options.verdicts if v not in VERDICTS]
    if unknown or not options.verdicts:
        raise DataError(
            f"verdicts must be a non-empty subset of {', '.join(VERDICTS)} "
            f"(got {', '.join(options.verdicts) or 'none'})",
            code="invalid_option",
            details={"field": "verdicts"},
        )
    fractions = (options.val_fraction, options.test_fraction)
    if any(not 0.0 <= f < 1.0 for f in fractions) or sum(fractions) >= 1.0:
        raise DataError(
            "val and test fractions must each be in [0, 1) and leave some items for training",
            code="invalid_option",
            details={"field": "val_fraction"},
        )
    if not 0.0 < options.damage_threshold < 1.0:
        raise DataError(
            "damage threshold must be between 0 and 1",
            code="invalid_option",
            details={"field": "damage_threshold"},
        )


# --------------------------------------------------------------------------- reading
def _latest_reviews(s: Session) -> list[Any]:
    from serving.storage.tables import Review

    latest: dict[tuple[str, str], Any] = {}
    for row in s.scalars(select(Review).order_by(Review.created_at, Review.id)):
        latest[(row.subject_type, row.subject_id)] = row
    return list(latest.values())


def _model_damage(probs: dict[str, float], threshold: float) -> tuple[str, ...]:
    return tuple(sorted(k for k, p in probs.items() if float(p) >= threshold))


def _subject_facts(
    s: Session, review: Any
) -> tuple[str, str, str, str | None, dict[str, float]] | None:
    """(item id, sku, category, model grade, model damage probs), None when gone."""
    from serving.storage import repo
    from serving.storage.tables import CatalogItem, Inspection, Return

    if review.subject_type == "return":
        ret = s.get(Return, review.subject_id)
        if ret is None:
            return None
        decision = repo.latest_decision(s, ret.id)
        item = s.get(CatalogItem, ret.sku)
        return (
            ret.id,
            ret.sku,
            item.category if item else "unknown",
            decision.grade if decision else None,
            dict(decision.damage_probs) if decision else {},
        )
    ins = s.get(Inspection, review.subject_id)
    if ins is None:
        return None
    if ins.return_id is not None:
        ret = s.get(Return, ins.return_id)
        item = s.get(CatalogItem, ret.sku) if ret is not None else None
        if ret is not None:
            return (
                ret.id,
                ret.sku,
                item.category if item else "unknown",
                ins.grade,
                dict(ins.damage_probs),
            )
    # An unmatched parcel: its own item; the SKU is unknown, so it gets a unique one.
    return (ins.id, f"unmatched-{ins.id}", "unknown", ins.grade, dict(ins.damage_probs))


def _to_label(
    s: Session, review: Any, options: ExportOptions, skipped: Counter[str]
) -> _Label | None:
    if review.verdict not in options.verdicts:
        skipped[f"verdict_{review.verdict}"] += 1
        return None
    facts = _subject_facts(s, review)
    if facts is None:
        skipped["subject_missing"] += 1
        return None
    item_id, sku, category, model_grade, damage_probs = facts
    if review.verdict == "reject" and review.grade is None:
        skipped["reject_without_grade"] += 1
        return None
    grade = review.grade if review.grade is not None else model_grade
    if grade is None:
        skipped["no_grade"] += 1
        return None
    damage = (
        tuple(review.damage)
        if review.damage is not None
        else _model_damage(damage_probs, options.damage_threshold)
    )
    return _Label(
        review_id=review.id,
        reviewer=review.reviewer,
        verdict=review.verdict,
        subject_type=review.subject_type,
        subject_id=review.subject_id,
        item_id=item_id,
        sku=sku,
        category=category,
        grade=grade,
        damage=tuple(sorted(set(damage))),
        photo_ids=tuple(review.photo_ids or ()),
        model_version=review.model_version,
        model_grade=model_grade,
        reviewed_at=review.created_at,
        note=review.note,
    )


# --------------------------------------------------------------------------- labels
def _labels_from_file(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not path.is_file():
        raise DataError(f"--labels-from {path} does not exist", code="missing_file")
    if path.suffix == ".onnx":
        import onnx

        from vision.card import CARD_KEY, ModelCard

        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # onnx raises DecodeError, ValueError, ... on bad files
            raise DataError(
                f"{path} is not a readable ONNX model: {exc}", code="invalid_model"
            ) from exc
        props = {p.key: p.value for p in model.metadata_props}
        if CARD_KEY not in props:
            raise DataError(f"{path} has no ReturnLens model card", code="invalid_model")
        card = ModelCard.from_json(props[CARD_KEY])
        return tuple(card.grade_labels), tuple(card.damage_labels)
    try:
        with path.open(encoding="utf-8") as fh:
            head = json.loads(fh.readline())
        return tuple(head["grade_labels"]), tuple(head["damage_labels"])
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise DataError(
            f"{path} is neither a model .onnx nor a manifest with a header "
            "naming grade_labels and damage_labels",
            code="invalid_manifest",
        ) from exc


def _ordered_union(lists: Iterable[Sequence[str]], what: str) -> tuple[str, ...]:
    """The one order all lists agree on (each must be a subsequence of the longest)."""
    seen = [tuple(x) for x in lists if x]
    if not seen:
        return ()
    longest = max(seen, key=len)
    for other in seen:
        it = iter(longest)
        if not all(label in it for label in other):
            raise DataError(
                f"the stored photos disagree on the {what} labels ({list(other)} "
                f"vs {list(longest)}); pass --labels-from MODEL.onnx",
                code="label_conflict",
            )
    return longest


def _header_labels(
    photos: Iterable[_Photo], dialect: str, options: ExportOptions
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if options.labels_from is not None:
        return _labels_from_file(options.labels_from)
    rows = list(photos)
    legacy = [p.id for p in rows if p.grade_labels is None or p.damage_labels is None]
    if legacy and dialect == "postgresql":
        raise DataError(
            f"{len(legacy)} stored photo(s) (e.g. {legacy[0]}) predate the stored "
            "label lists and PostgreSQL does not keep the order of their "
            "probabilities; pass --labels-from MODEL.onnx (the model that graded "
            "them) or a manifest with the same labels",
            code="labels_required",
        )
    grades = _ordered_union((p.grade_labels or list(p.grade_probs) for p in rows), "grade")
    damage = _ordered_union((p.damage_labels or list(p.damage_probs) for p in rows), "damage")
    return grades, damage


# --------------------------------------------------------------------------- splits
def _hash01(text: str) -> float:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:12], 16) / float(1 << 48)


def assign_splits(
    item_ids: Sequence[str],
    val_fraction: float,
    test_fraction: float,
    strata: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Stable split per item, stratified by ``strata`` (item -> grade); with >= 2 items,
    train and val are never empty.

    Within each stratum the items are ranked by a hash of their id and the first
    ``split_counts`` of them go to test, the next to val, the rest to train. So every
    grade gets its share of each split (a plain hash threshold leaves a grade with a
    dozen reviewed items a Binomial number of training photos: now and then one or
    none), an item's split does not depend on the export's order, and a growing export
    moves only the items at a boundary of their own grade's ranking.
    """
    strata = strata or {}
    groups: dict[str, list[str]] = {}
    for item in sorted(set(item_ids), key=_hash01):
        groups.setdefault(strata.get(item, ""), []).append(item)
    out: dict[str, str] = {}
    for group in groups.values():
        n_val, n_test = split_counts(len(group), val_fraction, test_fraction)
        for rank, item in enumerate(group):
            out[item] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    items = sorted(out, key=_hash01)
    if len(items) >= 2:
        if "val" not in out.values():
            candidates = [i for i in items if out[i] == "train"] or items
            out[candidates[0]] = "val"
        if "train" not in out.values():
            out[items[-1]] = "train"
    return out


def _item_grades(labels: Iterable[_Label]) -> dict[str, str]:
    """Each item's stratum for the split: its grade, or its grades joined when the shopper
    and dock reviews of one return disagree."""
    grades: dict[str, set[str]] = {}
    for lab in labels:
        grades.setdefault(lab.item_id, set()).add(lab.grade or "")
    return {item: "|".join(sorted(g)) for item, g in grades.items()}


# --------------------------------------------------------------------------- export
def _copy_photo(store: PhotoStorage, digest: str, dest: Path) -> None:
    if not isinstance(store, PhotoStore):  # an object store: the bytes come over the wire
        data = store.get(digest)
        if not (dest.is_file() and dest.stat().st_size == len(data)):
            atomic_write_bytes(dest, data)
        return
    src = store.path(digest)
    if dest.is_file() and dest.stat().st_size == src.stat().st_size:
        return  # content-addressed source: same name + size = same bytes
    atomic_copy(src, dest)


def _record(label: _Label, photo: _Photo, image: Path, split: str) -> ManifestRecord:
    grade_probs = photo.grade_probs
    photo_grade = max(grade_probs, key=lambda k: grade_probs[k]) if grade_probs else None
    meta: dict[str, Any] = {
        "source": "review",
        "review_id": label.review_id,
        "reviewer": label.reviewer,
        "verdict": label.verdict,
        "subject_type": label.subject_type,
        "subject_id": label.subject_id,
        "role": photo.role,
        "photo_id": photo.id,
        "digest": photo.digest,
        "model_version": label.model_version,
        "model_grade": label.model_grade,
        "photo_model_grade": photo_grade,
        "quality_passed": photo.quality_passed,
        "reviewed_at": label.reviewed_at.isoformat(),
    }
    if label.note:
        meta["note"] = label.note
    return ManifestRecord(
        id=f"review-{photo.id}",
        image=image,
        grade=label.grade,
        damage=label.damage,
        category=label.category,
        sku=label.sku,
        split=split,
        item_id=label.item_id,
        meta=meta,
    )


def _check_sqlite_file(database_url: str) -> None:
    """Refuse a SQLite URL whose file does not exist (connecting would create it)."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(database_url)
    except Exception:  # Database() raises the typed error for malformed URLs
        return
    local = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if local and not Path(str(url.database)).is_file():
        raise DataError(
            f"there is no database file {url.database}; point --database-url "
            "at the service's database",
            code="missing_database",
        )


def export_reviewed(
    database_url: str,
    photo_dir: Path | PhotoStorage,
    out_dir: Path,
    options: ExportOptions | None = None,
) -> ExportReport:
    """Write ``out_dir/manifest.jsonl`` and ``out_dir/images/*`` from reviewed items;
    the photos are read from a folder or a store (the service's S3 bucket)."""
    from serving.storage.db import Database
    from serving.storage.tables import Photo

    options = options or ExportOptions()
    _check_options(options)
    _check_sqlite_file(database_url)
    db = Database(database_url)
    try:
        if db.current_revision() is None:
            raise DataError(
                f"{db.url.render_as_string(hide_password=True)} has no ReturnLens "
                "tables; point --database-url at the service's database",
                code="not_a_returnlens_database",
            )
        skipped: Counter[str] = Counter()
        with db.read() as s:
            reviews = _latest_reviews(s)
            labels = [lab for r in reviews if (lab := _to_label(s, r, options, skipped))]
            ids = [pid for lab in labels for pid in lab.photo_ids]
            photos = (
                {p.id: _Photo.of(p) for p in s.scalars(select(Photo).where(Photo.id.in_(ids)))}
                if ids
                else {}
            )
        grade_labels, damage_labels = _header_labels(photos.values(), db.dialect, options)
    finally:
        db.dispose()
    return _write(
        labels,
        photos,
        grade_labels,
        damage_labels,
        PhotoStore(photo_dir) if isinstance(photo_dir, Path) else photo_dir,
        out_dir,
        options,
        skipped,
        len(reviews),
    )


def _write(
    labels: Sequence[_Label],
    photos: dict[str, _Photo],
    grade_labels: tuple[str, ...],
    damage_labels: tuple[str, ...],
    store: PhotoStorage,
    out_dir: Path,
    options: ExportOptions,
    skipped: Counter[str],
    n_reviews: int,
) -> ExportReport:
    out_dir = Path(os.path.abspath(out_dir))
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    chosen: list[tuple[_Label, _Photo]] = []
    for lab in labels:
        for pid in lab.photo_ids:
            photo = photos.get(pid)
            if photo is None:
                skipped["photo_missing"] += 1
            elif not photo.quality_passed and not options.include_failed_quality:
                skipped["photo_failed_quality"] += 1
            elif not store.exists(photo.digest):
                skipped["photo_file_missing"] += 1
            else:
                chosen.append((lab, photo))
    if not chosen:
        raise DataError(
            f"nothing to export: {n_reviews} reviewed item(s), none with a usable "
            f"labelled photo (skipped: {dict(skipped) or 'none'})",
            code="nothing_to_export",
            details={"skipped": dict(skipped)},
        )
    splits = assign_splits(
        [lab.item_id for lab, _ in chosen],
        options.val_fraction,
        options.test_fraction,
        _item_grades(lab for lab, _ in chosen),
    )
    records = []
    for lab, photo in chosen:
        dest = images / f"{photo.id}{_EXT.get(photo.media_type, '.jpg')}"
        _copy_photo(store, photo.digest, dest)
        records.append(_record(lab, photo, dest, splits[lab.item_id]))
    header = ManifestHeader(
        grade_labels=grade_labels,
        damage_labels=damage_labels,
        source="review",
        description=f"{len({lab.item_id for lab, _ in chosen})} reviewed "
        f"item(s) exported {datetime.now(UTC).isoformat()}",
    )
    manifest = out_dir / "manifest.jsonl"
    write_manifest(manifest, header, records)
    return ExportReport(
        manifest=manifest,
        records=len(records),
        items=len({r.item_id for r in records}),
        reviews=n_reviews,
        splits=dict(Counter(r.split for r in records)),
        grades=dict(Counter(r.grade or "" for r in records)),
        skipped=dict(skipped),
    )
