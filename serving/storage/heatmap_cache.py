"""Rendered heatmaps, cached as files beside the photo store.

A heatmap is a pure function of the stored photo, its stored scores (activation maps,
probabilities, label order), the serving model's preprocess geometry and the drawing
code. Its cache key hashes all of them (``serving.services.media.heatmap_key``), so a
cached file is never stale: another model or another drawing version asks for other
names. The first request for a heatmap renders it (bounded: ``media.heatmap_png``);
every later one reads the file.

The folder is ``<photo_dir>-heatmaps`` next to the photo store (``./var/photos`` ->
``./var/photos-heatmaps``), not inside it: the photo store holds only content-addressed
photos that rows point at (its garbage collector and the backups see nothing else).
Files are written atomically but not fsynced: a file lost in a crash is rendered again.
There is at most one file per photo, label and model version (about 0.5-1.5 MB each for
the ~1,000-pixel stored photos); deleting the folder is always safe.

The folder is bounded (``max_bytes``, the ``heatmap_cache_mib`` setting): a read makes a
file recent again, and every ``TRIM_EVERY`` writes, at start-up and on ``returnlens
storage gc``, the least recently used files go until the folder fits, together with
temporary files of writes killed mid-way. A reviewer's queue re-reads the same few
heatmaps, so recency is the right thing to keep.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from pathlib import Path

from vision.fsio import atomic_write_bytes, is_temp_name

_KEY = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
TRIM_EVERY = 32  # writes between two trims (a trim lists the folder)
_TEMP_GRACE_S = 3600.0  # a younger temporary file may be another worker's write in flight


def cache_root_for(photo_root: Path) -> Path:
    """The heatmap folder that belongs to the photo store at ``photo_root``."""
    return photo_root.with_name(f"{photo_root.name}-heatmaps")


class HeatmapCache:
    """PNG files keyed by a sha256 hex key: ``root/ab/cdef....png``."""

    def __init__(self, root: Path | str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._writes = 0
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"{key!r} is not a heatmap cache key")
        return self.root / key[:2] / f"{key[2:]}.png"

    def get(self, key: str) -> bytes | None:
        path = self.path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: the last to be trimmed
        return data

    def put(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data, durable=False, mode=0o600)
        with self._lock:
            self._writes += 1
            due = self._writes % TRIM_EVERY == 0
        if due:
            self.trim()

    def trim(self) -> list[Path]:
        """Remove least recently used files until the folder fits ``max_bytes``, and
        stale temporary files; the removed paths. Safe beside concurrent readers and
        writers: a file removed under a reader is rendered again."""
        if not self.root.is_dir():
            return []
        removed: list[Path] = []
        files: list[tuple[float, int, Path]] = []
        stale = time.time() - _TEMP_GRACE_S
        for path in self.root.glob("*/*"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if is_temp_name(path.name):
                if st.st_mtime < stale:
                    path.unlink(missing_ok=True)
                    removed.append(path)
            elif path.suffix == ".png":
                files.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            removed.append(path)
            total -= size
        return removed
