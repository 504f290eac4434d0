"""Copy-detection vectors of every shopper photo and catalog reference photo, in memory.

The reused-photo and catalog-photo checks (``vision.copydetect``) compare each new
upload with every earlier shopper photo of other returns and with every catalog
reference photo. Stage one, the candidate search, needs all stored vectors: the index
holds them as one float32 matrix per kind (``DIM`` floats a photo; a dot product with
100,000 of them takes about a millisecond, benchmarks/copy_detection.py). Stage two,
the geometric verification, reads only the few candidates' local features from the
database (:func:`verified_copies`).

The shopper photos are topped up like ``serving/services/phash_index.py``: rows this
process commits are added after the commit, rows other workers committed are noticed by
a count over a short recent window, and a full reload every ``resync_s`` picks up the
rest. The reference vectors (one per SKU with a reference photo) are reloaded when the
catalog's count or latest ``updated_at`` changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import BindParameter, ColumnElement, and_, bindparam, func, select
from sqlalchemy.orm import Session

from serving.services.phash_index import RESYNC_S, RecentShopperPhotos, epoch_seconds
from serving.storage.tables import CatalogItem, Photo
from vision import copydetect, copyverify

CANDIDATES = 8  # nearest to the whole new photo, verified per kind
PART_CANDIDATES = 4  # nearest to its content box (CopyDescriptor.parts), verified too

Row = tuple[str, str, bytes, datetime]  # photo id, return id, vector bytes, created at


@dataclass(frozen=True)
class Candidate:
    key: str  # photo id (shopper photo) or SKU (reference photo)
    return_id: str | None  # the shopper photo's return; None for a reference


class CopyIndex(RecentShopperPhotos[bytes]):
    """The shopper photos' vectors (``RecentShopperPhotos`` keeps the rest) and the
    catalog reference photos' vectors."""

    def __init__(
        self, *, resync_s: float = RESYNC_S, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(resync_s=resync_s, monotonic=monotonic)
        self._ref_signature: tuple[int, float] | None = None
        self._ref_vectors = np.zeros((0, copydetect.DIM), np.float32)
        self._ref_skus: list[str] = []

    def _reset_payload(self) -> None:
        self._vectors = np.zeros((0, copydetect.DIM), np.float32)

    def _append_payload(self, values: Sequence[bytes]) -> None:
        self._vectors = np.concatenate([self._vectors, _matrix(values)])

    def _count_since(self, session: Session, since: datetime) -> int:
        return int(session.connection().execute(_COUNT_SINCE, {"since": since}).scalar_one())

    def _rows_since(self, session: Session, since: datetime | None) -> Sequence[Row]:
        query = select(Photo.id, Photo.return_id, Photo.copy_vector, Photo.created_at).where(
            _shopper(since)
        )
        return [(r[0], r[1] or "", r[2] or b"", r[3]) for r in session.execute(query)]

    def refresh(self, session: Session) -> None:
        """Bring both kinds up to date (call inside a read transaction)."""
        with self._lock:
            self._refresh_photos(session)
            self._refresh_references(session)

    def _refresh_references(self, session: Session) -> None:
        count, latest = session.connection().execute(_REFERENCE_SIGNATURE).one()
        signature = (int(count), epoch_seconds(latest) if latest is not None else 0.0)
        if signature == self._ref_signature:
            return
        rows = session.execute(
            select(CatalogItem.sku, CatalogItem.reference_copy_vector).where(_WITH_VECTOR)
        ).all()
        self._ref_skus = [r[0] for r in rows]
        self._ref_vectors = _matrix([r[1] or b"" for r in rows])
        self._ref_signature = signature

    def candidates(self, queries: np.ndarray, exclude_return: str) -> list[Candidate]:
        """Shopper photos of other returns nearest to ``queries``
        (``copydetect.query_vectors``: the whole new photo, then its content box)."""
        with self._lock:
            others = self._others(exclude_return)
            if others.size == 0 or not queries[0].any():
                return []
            everyone = others.size == len(self._photo_ids)
            pool = self._vectors if everyone else self._vectors[others]
            top = copydetect.search(pool, queries, CANDIDATES, PART_CANDIDATES)
            rows = top if everyone else others[top]
            return [
                Candidate(self._photo_ids[int(i)], self._return_ids[int(self._returns[int(i)])])
                for i in rows
            ]

    def reference_candidates(self, queries: np.ndarray) -> list[Candidate]:
        """Catalog reference photos (any SKU) nearest to ``queries``."""
        with self._lock:
            if not queries[0].any():
                return []
            top = copydetect.search(self._ref_vectors, queries, CANDIDATES, PART_CANDIDATES)
            return [Candidate(self._ref_skus[int(i)], None) for i in top]


def _shopper(since: datetime | BindParameter[Any] | None) -> ColumnElement[bool]:
    where = and_(Photo.role == "shopper", Photo.copy_vector.is_not(None))
    return where if since is None else and_(where, Photo.created_at >= since)


# Built once: both run in every upload's read (``facts.load_upload_context``).
_COUNT_SINCE = select(func.count()).select_from(Photo).where(_shopper(bindparam("since")))
_WITH_VECTOR = CatalogItem.reference_copy_vector.is_not(None)
_REFERENCE_SIGNATURE = select(func.count(), func.max(CatalogItem.updated_at)).where(_WITH_VECTOR)


def _matrix(blobs: Sequence[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros((0, copydetect.DIM), np.float32)
    return np.ascontiguousarray(
        np.stack([copydetect.vector_from_bytes(b) for b in blobs]), np.float32
    )


@dataclass(frozen=True)
class VerifiedCopy:
    score: float  # agreement, 0..1
    other_photo_id: str  # photo id, or the reference photo's digest
    other_return_id: str | None
    sku: str | None


def verified_copies(
    session: Session,
    index: CopyIndex,
    descriptor: copydetect.CopyDescriptor,
    exclude_return: str,
) -> tuple[VerifiedCopy | None, VerifiedCopy | None]:
    """One new photo's best verified match among other returns' photos, and among the
    catalog reference photos (None: no candidate scored above 0). The candidates'
    features are read in one statement per kind; each photo of an upload is checked on
    its own task (``serving/services/copy_check.py``)."""
    queries = copydetect.query_vectors(descriptor)
    shop = index.candidates(queries, exclude_return)
    refs = index.reference_candidates(queries)
    features: dict[str, bytes] = {}
    if shop:
        ids = sorted({c.key for c in shop})
        q = select(Photo.id, Photo.copy_features).where(Photo.id.in_(ids))
        # on the connection: plain rows, the ORM's execution layer adds nothing here
        features = {r[0]: r[1] for r in session.connection().execute(q) if r[1]}
    ref_rows: dict[str, tuple[bytes, str]] = {}
    if refs:
        q2 = select(
            CatalogItem.sku, CatalogItem.reference_copy_features, CatalogItem.reference_digest
        ).where(CatalogItem.sku.in_(sorted({c.key for c in refs})))
        rows = session.connection().execute(q2)
        ref_rows = {r[0]: (r[1], r[2]) for r in rows if r[1] and r[2]}
    best: VerifiedCopy | None = None
    shop = [c for c in shop if c.key in features]
    found = best_of_stored(descriptor, [features[c.key] for c in shop])
    if found is not None:
        c = shop[found[0]]
        best = VerifiedCopy(found[1], c.key, c.return_id, None)
    best_ref: VerifiedCopy | None = None
    refs = [c for c in refs if c.key in ref_rows]
    found = best_of_stored(descriptor, [ref_rows[c.key][0] for c in refs])
    if found is not None:
        c = refs[found[0]]
        best_ref = VerifiedCopy(found[1], ref_rows[c.key][1], None, c.key)
    return best, best_ref


def best_of_stored(
    d: copydetect.CopyDescriptor, blobs: Sequence[bytes]
) -> tuple[int, float] | None:
    """The best verified of one new photo's candidates (their stored features, nearest
    first): every keypoint fit, then the dense check of the few with the most inliers
    (``copyverify.best_verified``). The bench's floor with the two checks calls it too
    (``benchmarks/harness/floor_checks.py``)."""
    if not blobs:
        return None
    stored = [copydetect.LocalFeatures.from_bytes(b) for b in blobs]
    return copyverify.best_verified(d, stored)
