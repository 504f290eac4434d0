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
"""

from __future__ import annotations

import re
from pathlib import Path

from vision.fsio import atomic_write_bytes

_KEY = re.compile(r"^[0-9a-f]{64}$")


def cache_root_for(photo_root: Path) -> Path:
    """The heatmap folder that belongs to the photo store at ``photo_root``."""
    return photo_root.with_name(f"{photo_root.name}-heatmaps")


class HeatmapCache:
    """PNG files keyed by a sha256 hex key: ``root/ab/cdef....png``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"{key!r} is not a heatmap cache key")
        return self.root / key[:2] / f"{key[2:]}.png"

    def get(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data, durable=False, mode=0o600)
