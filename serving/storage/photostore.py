"""Content-addressed photo files.

We never keep the bytes a shopper uploaded: they may carry EXIF GPS, a camera serial, an
ICC profile or a crafted payload. We keep a re-encoded copy of the decoded, upright
pixels (OpenCV writes no metadata), named by the sha256 of the stored bytes:
``root/ab/cdef....jpg``. The same pixels always give the same file, so a retried upload
or a second replica writes the same name and nothing is duplicated.

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
from pathlib import Path

import cv2
import numpy as np

from serving.domain_errors import NotFound
from vision.fsio import atomic_write_bytes

JPEG_QUALITY = 92
MEDIA_TYPE = "image/jpeg"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


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


class PhotoStore:
    """Photos on a local or shared file system, keyed by the sha256 of the stored bytes."""

    media_type = MEDIA_TYPE

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        if not _DIGEST.match(digest):
            raise NotFound(f"{digest!r} is not a photo digest", code="not_found")
        return self.root / digest[:2] / f"{digest[2:]}.jpg"

    def put(self, rgb: np.ndarray) -> str:
        """Store a clean copy of ``rgb``; returns its digest (idempotent)."""
        return self.put_bytes(encode_clean_jpeg(rgb))

    def put_all(self, photos: Sequence[np.ndarray]) -> list[str]:
        """Store clean copies of several photos (one upload's): every photo is encoded
        before the first file is written, so a photo that cannot be encoded leaves no file
        of the others behind. (A failed write, such as a full disk, may still leave the
        earlier files: orphans that nothing references, as after a crash.)"""
        encoded = [encode_clean_jpeg(rgb) for rgb in photos]
        return [self.put_bytes(data) for data in encoded]

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
