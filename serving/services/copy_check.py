"""The reused-photo and catalog-photo checks of one upload, run beside its grading.

Each new photo's check is one task on the service's helper pool, started as soon as the
photo is decoded: describe it (``vision.copydetect.describe``), search the in-memory
vectors, read the candidates' features in one short read transaction and verify them
(``serving/services/copy_index.py``). None of that needs the model's output, so on an
idle core it runs while ONNX Runtime and the quality gate work, instead of after them:
with many stored photos of a popular SKU, verifying 8 candidates costs about as much
as one inference (``benchmarks/stage_cpu.py``). The request then takes the best match
of each kind over its photos (``best_matches``), and stores each photo's descriptor
(``with_descriptors``).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace

from serving.policy import CopyMatch
from serving.services.copy_index import VerifiedCopy, verified_copies
from serving.services.service import ReturnLensService
from vision import copydetect
from vision.pipeline import GradeResult
from vision.types import DecodedPhoto


@dataclass(frozen=True)
class CopyCheck:
    """One new photo's descriptor and its best verified match of each kind (None: no
    candidate scored above 0)."""

    descriptor: copydetect.CopyDescriptor
    shopper: VerifiedCopy | None  # among other returns' photos
    catalog: VerifiedCopy | None  # among the catalog's reference photos


def check_photo(svc: ReturnLensService, photo: DecodedPhoto, return_id: str) -> CopyCheck:
    """Describe one new photo and verify its nearest stored photos of both kinds."""
    descriptor = copydetect.describe(photo.rgb)
    with svc.db.read() as s:
        shopper, catalog = verified_copies(s, svc.copy_index, descriptor, return_id)
    return CopyCheck(descriptor, shopper, catalog)


def start(
    svc: ReturnLensService, photos: Sequence[DecodedPhoto], return_id: str
) -> list[Future[CopyCheck]]:
    """One task per photo on the helper pool (it never waits on the pool itself)."""
    return [svc.pool.submit(check_photo, svc, p, return_id) for p in photos]


def with_descriptors(result: GradeResult, checks: Sequence[CopyCheck]) -> GradeResult:
    """``result`` with each photo's copy descriptor, for its stored row."""
    photos = tuple(
        replace(g, copy=c.descriptor) for g, c in zip(result.photos, checks, strict=True)
    )
    return replace(result, photos=photos)


def best_matches(
    checks: Sequence[CopyCheck], new_photo_ids: Sequence[str]
) -> tuple[CopyMatch | None, CopyMatch | None]:
    """The best verified match of each kind over the upload's photos (the first photo of
    equal scores), named by the new photo it was found for."""
    copied: CopyMatch | None = None
    catalog: CopyMatch | None = None
    for check, photo_id in zip(checks, new_photo_ids, strict=True):
        shop, ref = check.shopper, check.catalog
        if shop is not None and (copied is None or shop.score > copied.score):
            copied = CopyMatch(
                shop.score, photo_id, shop.other_photo_id, other_return_id=shop.other_return_id
            )
        if ref is not None and (catalog is None or ref.score > catalog.score):
            catalog = CopyMatch(ref.score, photo_id, ref.other_photo_id, sku=ref.sku)
    return copied, catalog
