"""Backbone features of labelled photos, read from the exported graph and cached on disk.

``returnlens adapt`` never runs the backbone in torch: it reads the pooled features (and,
when damage labels are to be refitted, the last feature map) out of the *exported ONNX
graph*, decoded and preprocessed exactly as serving does, so the heads are fitted on the
very numbers the service will feed them.

The cache makes the second adaptation cheap: a deployment that adapts every week on
all its reviewed photos pays the backbone only for the photos reviewed since. One file
per (backbone, photo bytes) pair, keyed by both SHA-256s (the backbone's covers every
node and weight but the adaptable heads, and the preprocessing:
``training.adapt_graph.backbone_digest``), so a changed photo or another backbone can
never be served a stale vector, while a model adapted from an adapted model reuses its
parent's features; files are written atomically.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from tqdm import tqdm

from vision.card import ModelCard
from vision.errors import DataError
from vision.fsio import atomic_path
from vision.manifest import ManifestRecord
from vision.model import INPUT_NAME, session_options
from vision.pipeline import decode_for_grading
from vision.preprocess import preprocess_batch
from vision.unfamiliarity_graph import with_extra_output

BATCH = 32


@dataclass(frozen=True)
class Features:
    """One row per photo; ``V`` views (2 for a mirror-averaged export, else 1)."""

    pooled: np.ndarray  # [N, V, C] float32
    feature_map: np.ndarray | None  # [N, V, C, h, w] float16 (cached), when asked for

    def __len__(self) -> int:
        return int(self.pooled.shape[0])

    def take(self, index: np.ndarray) -> Features:
        fmap = None if self.feature_map is None else self.feature_map[index]
        return Features(self.pooled[index], fmap)


def check_photos(records: Sequence[ManifestRecord]) -> None:
    """Every photo must still be readable before any work starts."""
    gone = [r for r in records if not r.image.is_file()]
    if gone:
        raise DataError(
            f"{len(gone)} of {len(records)} labelled photos are gone from the store "
            f"(first: {gone[0].id} at {gone[0].image}); re-export the reviewed labels",
            code="photos_missing",
        )


class FeatureReader:
    """Runs the base graph with its feature tensors as extra outputs."""

    def __init__(
        self,
        model: onnx.ModelProto,
        backbone_sha256: str,
        card: ModelCard,
        pooled: str,
        feature_map: str,
        cache_dir: Path | None,
    ) -> None:
        extra = with_extra_output(with_extra_output(model, pooled), feature_map)
        self.session = ort.InferenceSession(
            extra.SerializeToString(),
            sess_options=session_options(),
            providers=["CPUExecutionProvider"],
        )
        self.outputs = [pooled, feature_map]
        self.card = card
        self.cache = None if cache_dir is None else Path(cache_dir) / backbone_sha256[:16]

    def _path(self, digest: str) -> Path | None:
        return None if self.cache is None else self.cache / digest[:2] / f"{digest}.npz"

    def exact(self, records: Sequence[ManifestRecord]) -> Features:
        """Float32 features straight from the graph (no cache): for the parity check."""
        pooled, fmap = self._run([r.image.read_bytes() for r in records], np.float32)
        return Features(pooled, fmap)

    def _run(
        self, photos: list[bytes], fmap_dtype: type = np.float16
    ) -> tuple[np.ndarray, np.ndarray]:
        size = self.card.preprocess.input_size
        batch = preprocess_batch(
            [decode_for_grading(b, size).rgb for b in photos], self.card.preprocess
        )
        pooled, fmap = self.session.run(self.outputs, {INPUT_NAME: batch})
        views = pooled.shape[0] // len(photos)
        pooled = pooled.reshape(views, len(photos), -1).transpose(1, 0, 2)
        fmap = fmap.reshape(views, len(photos), *fmap.shape[1:]).swapaxes(0, 1)
        return pooled.astype(np.float32), fmap.astype(fmap_dtype)

    def read(
        self,
        records: Sequence[ManifestRecord],
        *,
        feature_map: bool,
        progress: bool = True,
        desc: str = "features",
    ) -> tuple[Features, int]:
        """Features of ``records`` in order, and how many came from the cache."""
        pooled: list[np.ndarray | None] = [None] * len(records)
        fmaps: list[np.ndarray | None] = [None] * len(records)
        todo: list[tuple[int, bytes, str]] = []
        for i, rec in enumerate(records):
            data = rec.image.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            path = self._path(digest)
            if path is not None and path.is_file():
                with np.load(path) as cached:
                    if not feature_map or "feature_map" in cached:
                        pooled[i] = cached["pooled"]
                        fmaps[i] = cached["feature_map"] if feature_map else None
                        continue
            todo.append((i, data, digest))
        hits = len(records) - len(todo)
        with tqdm(total=len(todo), desc=desc, unit="img", disable=not progress) as bar:
            for start in range(0, len(todo), BATCH):
                chunk = todo[start : start + BATCH]
                got_p, got_f = self._run([data for _, data, _ in chunk])
                for (i, _, digest), p, f in zip(chunk, got_p, got_f, strict=True):
                    pooled[i], fmaps[i] = p, (f if feature_map else None)
                    self._store(digest, p, f)
                bar.update(len(chunk))
        fmap = np.stack([f for f in fmaps if f is not None]) if feature_map else None
        return Features(np.stack([p for p in pooled if p is not None]), fmap), hits

    def _store(self, digest: str, pooled: np.ndarray, fmap: np.ndarray) -> None:
        path = self._path(digest)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            np.savez(fh, pooled=pooled, feature_map=fmap)
