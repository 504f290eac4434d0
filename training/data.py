"""Manifest records -> model-ready uint8 batches, and the batch sampler.

The eval transform IS the serving transform: photo bytes -> ``vision.decode.decode_image``
(default arguments, exactly as serving decodes an upload) -> ``vision.preprocess``.
Training inserts ``training.augment.Augmenter`` between decode and preprocess, with a
per-sample RNG seeded by (seed, epoch, index).

``SkuBatchSampler`` builds each epoch from groups of K photos of the same SKU, so the
supervised contrastive embedding loss always sees positives (P SKUs x K photos per
batch), optionally draws the epoch with grade-balanced sampling (class_balance:
sampler), and shards whole batches across DDP ranks: it replaces DistributedSampler
while keeping its contract (disjoint shards, the same number of batches on every rank,
reshuffled per epoch via the epoch number).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from training.augment import Augmenter
from vision.errors import DataError, DecodeError
from vision.manifest import ManifestRecord
from vision.pipeline import decode_for_grading
from vision.preprocess import PreprocessSpec, preprocess

Key = tuple[int, int]  # (epoch, index): the sampler tells the dataset which epoch it is


@dataclass(frozen=True)
class Encoded:
    """Labels of one split as arrays (picklable to DataLoader workers)."""

    ids: tuple[str, ...]
    paths: tuple[str, ...]
    grades: np.ndarray  # int64 [N], -1 = unlabelled
    damage: np.ndarray  # float32 [N, D] multi-hot
    skus: np.ndarray  # int64 [N]


def encode_records(
    records: Sequence[ManifestRecord],
    grade_labels: Sequence[str],
    damage_labels: Sequence[str],
    sku_index: dict[str, int],
) -> Encoded:
    g_index = {g: i for i, g in enumerate(grade_labels)}
    d_index = {d: i for i, d in enumerate(damage_labels)}
    damage = np.zeros((len(records), len(damage_labels)), np.float32)
    for row, rec in enumerate(records):
        for label in rec.damage:
            damage[row, d_index[label]] = 1.0
    return Encoded(
        ids=tuple(r.id for r in records),
        paths=tuple(str(r.image) for r in records),
        grades=np.array(
            [g_index[r.grade] if r.grade is not None else -1 for r in records], np.int64
        ),
        damage=damage,
        skus=np.array([sku_index.setdefault(r.sku, len(sku_index)) for r in records], np.int64),
    )


def load_photo(path: str, record_id: str, input_size: int) -> np.ndarray:
    """Decoded RGB exactly as serving decodes an upload; DataError names the record."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(
            f"record {record_id}: cannot read image {path} ({exc.strerror})",
            code="missing_image",
            details={"id": record_id, "path": path},
        ) from exc
    try:
        return decode_for_grading(data, input_size).rgb
    except DecodeError as exc:
        raise DataError(
            f"record {record_id}: image {path} cannot be decoded: {exc.message}",
            code="unreadable_image",
            details={"id": record_id, "path": path},
        ) from exc


class PhotoDataset(Dataset[dict[str, torch.Tensor]]):
    def __init__(
        self, encoded: Encoded, spec: PreprocessSpec, augmenter: Augmenter | None, seed: int
    ) -> None:
        self.encoded, self.spec, self.augmenter, self.seed = encoded, spec, augmenter, seed

    def __len__(self) -> int:
        return len(self.encoded.paths)

    def __getitem__(self, key: Key | int) -> dict[str, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, int(key))
        e = self.encoded
        rgb = load_photo(e.paths[index], e.ids[index], self.spec.input_size)
        if self.augmenter is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            rgb = self.augmenter(rgb, rng)
        image = preprocess(np.ascontiguousarray(rgb), self.spec)
        return {
            "image": torch.from_numpy(image),
            "grade": torch.tensor(e.grades[index]),
            "damage": torch.from_numpy(e.damage[index]),
            "sku": torch.tensor(e.skus[index]),
            "index": torch.tensor(index),
        }


class SkuBatchSampler(Sampler[list[Key]]):
    """Batches of whole K-photo SKU groups; deterministic per (seed, epoch); DDP-sharded."""

    def __init__(
        self,
        skus: np.ndarray,
        grades: np.ndarray,
        batch_size: int,
        photos_per_sku: int,
        seed: int,
        *,
        balance: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.skus, self.grades = skus, grades
        self.k, self.seed, self.balance = photos_per_sku, seed, balance
        self.rank, self.world = rank, world_size
        self.epoch = 0
        self.batch_size = min(batch_size, len(skus) // world_size)
        if self.batch_size < 2:
            raise DataError(
                f"the train split has {len(skus)} photos: too few for batches of "
                f"at least 2 on each of {world_size} process(es)"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.skus) // self.batch_size // self.world

    def _epoch_indices(self, rng: np.random.Generator) -> np.ndarray:
        n = len(self.skus)
        if not self.balance:
            return rng.permutation(n)
        labelled = self.grades >= 0
        freq = Counter(self.grades[labelled].tolist())
        w = np.array([1.0 / freq[g] if g >= 0 else 0.0 for g in self.grades.tolist()])
        if w.sum() == 0:
            return rng.permutation(n)
        return rng.choice(n, size=n, replace=True, p=w / w.sum())

    def __iter__(self) -> Iterator[list[Key]]:
        rng = np.random.default_rng([self.seed, self.epoch, 7919])
        by_sku: dict[int, list[int]] = {}
        for i in self._epoch_indices(rng).tolist():
            by_sku.setdefault(int(self.skus[i]), []).append(i)
        groups = [
            idx[j : j + self.k] for idx in by_sku.values() for j in range(0, len(idx), self.k)
        ]
        flat = [i for g in (groups[j] for j in rng.permutation(len(groups))) for i in g]
        per_rank = len(self)
        batches = [
            flat[b * self.batch_size : (b + 1) * self.batch_size]
            for b in range(per_rank * self.world)
        ]
        for batch in batches[self.rank :: self.world][:per_rank]:
            yield [(self.epoch, i) for i in batch]


def _worker_init(worker_id: int) -> None:
    del worker_id
    cv2.setNumThreads(1)  # workers are the parallelism; OpenCV threads would oversubscribe


def make_loader(
    dataset: PhotoDataset,
    *,
    batch_sampler: SkuBatchSampler | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    pin_memory: bool = False,
    indices: Sequence[int] | None = None,
) -> DataLoader[dict[str, torch.Tensor]]:
    """Train loader (with the SKU batch sampler) or eval loader (in order, no augmentation)."""
    common: dict[str, Any] = {
        "num_workers": num_workers,
        "pin_memory": pin_memory,
        "worker_init_fn": _worker_init if num_workers > 0 else None,
        "persistent_workers": num_workers > 0,
    }
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, **common)  # type: ignore[arg-type]
    order = list(range(len(dataset))) if indices is None else list(indices)
    return DataLoader(
        dataset,
        sampler=order,
        batch_size=batch_size,  # type: ignore[arg-type]
        shuffle=False,
        **common,
    )


def grade_class_weights(grades: np.ndarray, num_grades: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 over the samples, clipped to 0.2..5."""
    counts = np.bincount(grades[grades >= 0], minlength=num_grades).astype(np.float64)
    total = counts.sum()
    weights = np.where(counts > 0, total / (num_grades * np.maximum(counts, 1)), 1.0)
    weights = np.clip(weights, 0.2, 5.0)
    if total > 0:
        weights = weights / (weights * counts).sum() * total
    return torch.tensor(weights, dtype=torch.float32)
