"""Content-addressed photo files: one interface, two backends.

:class:`PhotoStorage` is what the service holds (``svc.photos``): ``put``/``put_all``/
``put_bytes``/``get``/``exists``, ``list_photos``/``delete`` for ``returnlens storage gc``
and ``ready`` for ``/readyz``. :class:`PhotoStore` (here) keeps the photos in a local or
shared folder, the embedded default; ``serving.storage.s3store.S3PhotoStore`` keeps them
in any S3-compatible object store. :func:`open_photo_store` picks one from the settings
(``RETURNLENS_PHOTO_STORE=local|s3``). Both name a photo the same way and write it before
its row, as below.

We never keep the bytes a shopper uploaded as they came: they may carry EXIF GPS, a
camera serial, an ICC profile or a crafted payload. We keep a clean copy of the decoded,
upright pixels, named by the sha256 of the stored bytes: ``root/ab/cdef....jpg``. When
the caller passes the upload beside its decoded photo (``put_all(photos, uploads)``) and
the upload is an upright JPEG no longer than the shopper page sends (2,048 px), the
clean copy is the upload's own JPEG data with every metadata segment and trailing byte
removed (``vision.jpegclean.clean_upload``, the one place that decides when this is
exact): decoded the way it was graded it gives exactly the graded pixels, reviewers get
the whole photo (the page's 1600 px photo is graded DCT-halved), and it costs a pass
over the bytes (~0.06 ms) instead of a re-encode (~1 ms at 800 x 600) with no second
JPEG loss. Otherwise (a rotated photo, a PNG or WebP, a 12 MP camera original) it is a
re-encode of the graded pixels (``encode_clean_jpeg``: OpenCV writes no metadata).
Either way the same upload always gives the same file, so a retried upload or a second
replica writes the same name and nothing is duplicated.

Files are written atomically and durably (``vision.fsio``: temp file in the same folder,
fsync, rename, fsync of the folder; owner-only mode) *before* the database row that
points at them commits. A crash in between leaves at most an orphan file, which is
harmless (it is referenced by nothing and a later identical upload reuses it); a
committed row never points at a missing file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import cv2
import numpy as np

from serving.domain_errors import NotFound
from vision.fsio import atomic_write_bytes, is_temp_name
from vision.jpegclean import clean_upload
from vision.types import DecodedPhoto

if TYPE_CHECKING:
    from serving.settings import Settings

JPEG_QUALITY = 92
MEDIA_TYPE = "image/jpeg"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def check_digest(digest: str) -> str:
    """``digest`` when it is a sha256 hex digest; NotFound otherwise (a bad id in a URL)."""
    if not _DIGEST.match(digest):
        raise NotFound(f"{digest!r} is not a photo digest", code="not_found")
    return digest


def photo_name(digest: str) -> str:
    """The relative name of a photo in either backend: ``ab/cdef....jpg``."""
    check_digest(digest)
    return f"{digest[:2]}/{digest[2:]}.jpg"


@dataclass(frozen=True)
class StoredPhoto:
    """One photo as the store lists it (for ``returnlens storage gc``)."""

    digest: str
    mtime: float  # last written or reused, seconds since the epoch
    size: int
    location: Path | str  # the local file, or ``s3://bucket/key``


@runtime_checkable
class PhotoStorage(Protocol):
    """What the service needs from a photo store, whichever the backend.

    ``local_root`` is a local folder for what is derived from the photos and may be
    rebuilt (the rendered-heatmap cache sits beside it, ``heatmap_cache.cache_root_for``):
    the photo folder itself for the local store, ``RETURNLENS_PHOTO_DIR`` for S3.
    A store that does not answer raises ``StoreUnavailable`` (503 with ``Retry-After``).
    """

    media_type: str
    local_root: Path

    def put(self, photo: DecodedPhoto | np.ndarray, upload: bytes | None = None) -> str: ...

    def put_all(
        self,
        photos: Sequence[DecodedPhoto | np.ndarray],
        uploads: Sequence[bytes] | None = None,
    ) -> list[str]: ...

    def put_bytes(self, data: bytes) -> str: ...

    def get(self, digest: str) -> bytes: ...

    def exists(self, digest: str) -> bool: ...

    def list_photos(self) -> list[StoredPhoto]: ...

    def delete(self, digest: str, *, older_than: float) -> bool: ...

    def ready(self) -> bool: ...

    def describe(self) -> str: ...


def open_photo_store(settings: Settings) -> PhotoStorage:
    """The photo store the settings name: the local folder ``photo_dir`` (default) or
    the S3 bucket (``photo_store = "s3"``, with ``photo_dir`` as its local cache root)."""
    settings.photo_dir.mkdir(parents=True, exist_ok=True)
    if settings.photo_store == "s3":
        from serving.storage.s3store import S3PhotoStore

        return S3PhotoStore.from_settings(settings)
    return PhotoStore(settings.photo_dir)


def command_photos(settings: Settings, photo_dir: Path | None) -> Path | PhotoStorage:
    """What an offline command (gc, replay, reviewed-label export) reads photos from: the
    folder its ``--photo-dir`` flag names, else the service's store: its S3 bucket, or its
    folder (a path: each command checks or creates it as it always has)."""
    if photo_dir is not None:
        return photo_dir
    if settings.photo_store == "s3":
        return open_photo_store(settings)
    return settings.photo_dir


def encode_clean_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """RGB uint8 -> baseline JPEG with no EXIF/ICC/XMP segments."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected HxWx3 uint8 RGB, got {rgb.shape} {rgb.dtype}")
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def clean_jpeg(photo: DecodedPhoto | np.ndarray, upload: bytes | None = None) -> bytes:
    """The metadata-free JPEG to store for one photo: the upload without its metadata
    when ``vision.jpegclean.clean_upload`` allows it, else a re-encode of the pixels
    (always, for bare pixels or without the upload)."""
    if isinstance(photo, np.ndarray):
        return encode_clean_jpeg(photo)
    return clean_upload(photo, upload) or encode_clean_jpeg(photo.rgb)


def clean_jpegs(
    photos: Sequence[DecodedPhoto | np.ndarray], uploads: Sequence[bytes] | None = None
) -> list[bytes]:
    """``clean_jpeg`` of every photo (``uploads[i]`` is the upload ``photos[i]`` was
    decoded from), all before the caller writes any: ``put_all``'s all-or-nothing encode."""
    if uploads is not None and len(uploads) != len(photos):
        raise ValueError(f"{len(photos)} photos but {len(uploads)} uploads")
    if uploads is None:
        return [clean_jpeg(photo) for photo in photos]
    return [clean_jpeg(photo, upload) for photo, upload in zip(photos, uploads, strict=True)]


class CleanPuts:
    """``put`` and ``put_all`` of both stores, on top of their own ``put_bytes``."""

    def put_bytes(self, data: bytes) -> str:
        raise NotImplementedError

    def put(self, photo: DecodedPhoto | np.ndarray, upload: bytes | None = None) -> str:
        """Store a clean copy of ``photo`` (``clean_jpeg``: ``upload`` is the bytes it was
        decoded from, if known); returns its digest (idempotent)."""
        return self.put_bytes(clean_jpeg(photo, upload))

    def put_all(
        self,
        photos: Sequence[DecodedPhoto | np.ndarray],
        uploads: Sequence[bytes] | None = None,
    ) -> list[str]:
        """Store clean copies of several photos (one upload's; ``uploads``, when given,
        are the bytes each was decoded from: ``clean_jpeg``): every photo is encoded
        before the first file or object is written, so a photo that cannot be encoded
        leaves none of the others behind. (A failed write, such as a full disk, may still
        leave the earlier ones: orphans that nothing references, as after a crash.)"""
        return [self.put_bytes(data) for data in clean_jpegs(photos, uploads)]


class PhotoStore(CleanPuts):
    """Photos on a local or shared file system, keyed by the sha256 of the stored bytes."""

    media_type = MEDIA_TYPE

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.local_root = self.root

    def describe(self) -> str:
        return f"folder {self.root}"

    def path(self, digest: str) -> Path:
        return self.root / photo_name(digest)

    def put_bytes(self, data: bytes) -> str:
        """Store already-clean JPEG bytes (callers must have stripped metadata)."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.is_file() and target.stat().st_size == len(data):
            # Reused: make it young again, so `returnlens storage gc` (which keeps files
            # younger than its grace period) cannot remove it before the new row commits.
            with contextlib.suppress(OSError):
                os.utime(target)
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data, durable=True, mode=0o600)
        return digest

    def get(self, digest: str) -> bytes:
        target = self.path(digest)
        try:
            return target.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(
                f"photo {digest[:12]}... is not in the photo store", code="not_found"
            ) from exc

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def ready(self) -> bool:
        return self.root.is_dir()

    def list_photos(self) -> list[StoredPhoto]:
        """Every file laid out the way the store names its photos (temporary files of
        killed writes and anything else in the folder are not photos)."""
        out = []
        for folder in self.root.iterdir():
            if not folder.is_dir() or len(folder.name) != 2:
                continue
            for path in folder.iterdir():
                if is_temp_name(path.name):
                    continue
                digest = folder.name + path.name.split(".", 1)[0]
                if not _DIGEST.match(digest) or self.path(digest) != path:
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                if path.is_file():
                    out.append(StoredPhoto(digest, st.st_mtime, st.st_size, path))
        return out

    def delete(self, digest: str, *, older_than: float) -> bool:
        """Remove the photo if it was last written or reused before ``older_than``
        (checked right before: ``put_bytes`` makes a reused file young again)."""
        path = self.path(digest)
        try:
            if path.stat().st_mtime >= older_than:
                return False
        except FileNotFoundError:
            return False
        path.unlink(missing_ok=True)
        return True
