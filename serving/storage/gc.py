"""Photo-store housekeeping: temporary files left by killed writes, unreferenced photos.

Photo files are written before the database row that points at them commits
(``photostore.py``), so two kinds of leftovers can pile up, both harmless to readers:

- **temporary files** (``vision.fsio`` names: ``.<name>.<8 hex>.tmp``) of a write that
  was killed between creating the file and renaming it. The service removes the stale
  ones at start-up (:func:`remove_stale_temp_files`);
- **orphan photos**: files no row references, from an upload refused or killed after
  its files were written. ``returnlens storage gc`` finds them
  (:func:`collect_garbage`) and removes them only when asked (a dry run by default).

Both keep anything younger than ``min_age`` (default one hour): a file that young may
belong to an upload in flight in another worker or replica, whose row has not committed
yet. The database is read after the files are listed, and each file's age is checked
again just before it is removed (``put`` refreshes the age of a photo it reuses), so a
row committed meanwhile keeps its file. Photos are listed and removed through the store's
interface (``list_photos``, ``delete``), so the same collection runs on the local folder
and on an S3 bucket (whose age is the object's Last-Modified).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from serving.storage.db import Database
from serving.storage.photostore import PhotoStorage, PhotoStore
from serving.storage.tables import CatalogItem, Photo
from vision.fsio import is_temp_name

DEFAULT_MIN_AGE = timedelta(hours=1)


@dataclass(frozen=True)
class GcReport:
    """What ``collect_garbage`` found (and removed, unless it was a dry run)."""

    files: int  # photo files examined
    referenced: int  # distinct digests the database points at
    orphans: tuple[Path | str, ...]  # unreferenced photos older than min_age (file or s3://)
    orphan_bytes: int
    temp_files: tuple[Path, ...]  # stale temporary files
    young: int  # unreferenced files newer than min_age, kept (an upload may be in flight)
    removed: tuple[Path | str, ...] = field(default=())
    dry_run: bool = True

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        out = [
            f"{self.files} photo files, {self.referenced} referenced by the database",
            f"{len(self.orphans)} unreferenced photo files ({self.orphan_bytes} bytes) and "
            f"{len(self.temp_files)} leftover temporary files: {verb} "
            f"{len(self.orphans) + len(self.temp_files) if self.dry_run else len(self.removed)}",
        ]
        if self.young:
            out.append(f"{self.young} unreferenced files are too new to judge; kept")
        if self.dry_run and (self.orphans or self.temp_files):
            out.append("dry run: nothing was removed; run again with --delete to remove them")
        return out


def _older_than(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def _remove(paths: Iterable[Path], cutoff: float) -> list[Path]:
    """Unlink each path that is still older than ``cutoff`` (re-checked right before)."""
    removed = []
    for path in paths:
        if _older_than(path, cutoff):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def stale_temp_files(
    folder: Path, *, min_age: timedelta = DEFAULT_MIN_AGE, recursive: bool = True
) -> list[Path]:
    """Temporary files of killed writes under ``folder`` older than ``min_age``."""
    if not folder.is_dir():
        return []
    cutoff = time.time() - min_age.total_seconds()
    names = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    return sorted(p for p in names if is_temp_name(p.name) and _older_than(p, cutoff))


def remove_stale_temp_files(
    folder: Path, *, min_age: timedelta = DEFAULT_MIN_AGE, recursive: bool = True
) -> list[Path]:
    """Remove the stale temporary files under ``folder`` (start-up); the removed paths."""
    cutoff = time.time() - min_age.total_seconds()
    return _remove(stale_temp_files(folder, min_age=min_age, recursive=recursive), cutoff)


def referenced_digests(db: Database) -> set[str]:
    """Every photo digest a row points at: stored photos and catalog reference photos."""
    with db.read() as s:
        photos = s.scalars(select(Photo.digest).distinct())
        refs = s.scalars(
            select(CatalogItem.reference_digest).where(CatalogItem.reference_digest.is_not(None))
        )
        return {d for d in (*photos, *refs) if d}


def drop_if_unreferenced(db: Database, store: PhotoStorage, digest: str, *, since: float) -> bool:
    """Remove one superseded photo (a replaced reference photo) once nothing points at
    it, so replacing references does not pile up orphans for ``gc``.

    Only a photo untouched since ``since`` (the replacing request's start) goes: one
    another upload stored or reused meanwhile is younger (``put_bytes`` refreshes it) and
    is left for ``gc``, whose grace period covers rows that have not committed yet.
    """
    with db.read() as s:
        used = s.scalar(select(Photo.digest).where(Photo.digest == digest).limit(1)) or s.scalar(
            select(CatalogItem.sku).where(CatalogItem.reference_digest == digest).limit(1)
        )
    if used:
        return False
    return store.delete(digest, older_than=since)


def collect_garbage(
    db: Database,
    store: PhotoStorage,
    *,
    min_age: timedelta = DEFAULT_MIN_AGE,
    delete: bool = False,
) -> GcReport:
    """Find (and with ``delete``, remove) unreferenced photos and stale temporary files
    in the photo store (either backend; temporary files only exist in a local folder);
    photos younger than ``min_age`` are never touched."""
    cutoff = time.time() - min_age.total_seconds()
    files = store.list_photos()  # listed BEFORE the database is read (see module doc)
    # Temporary files of killed writes exist only in a folder (an S3 PUT is atomic).
    temps = stale_temp_files(store.root, min_age=min_age) if isinstance(store, PhotoStore) else []
    referenced = referenced_digests(db)
    unreferenced = [p for p in files if p.digest not in referenced]
    old = [p for p in unreferenced if p.mtime < cutoff]
    orphans = [p.location for p in old]
    size = sum(p.size for p in old)
    removed: list[Path | str] = []
    if delete:
        # The two-hex-digit folders stay: a concurrent put may be about to write there.
        removed = [p.location for p in old if store.delete(p.digest, older_than=cutoff)]
        removed += _remove(temps, cutoff)
    return GcReport(
        files=len(files),
        referenced=len(referenced),
        orphans=tuple(orphans),
        orphan_bytes=size,
        temp_files=tuple(temps),
        young=len(unreferenced) - len(orphans),
        removed=tuple(removed),
        dry_run=not delete,
    )
