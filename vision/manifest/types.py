"""Manifest data types: header, record, problem and the loaded manifest.

Split from ``vision.manifest`` (the one import for the whole API) so the reader and
the writer can share them without a cycle. Torch-free.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KIND = "returnlens-manifest"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
REQUIRED_SPLITS = ("train", "val")  # an empty test split is only a warning

_HEADER_KEYS = ("kind", "version", "grade_labels", "damage_labels", "source", "description")
_RECORD_KEYS = (
    "id",
    "image",
    "grade",
    "damage",
    "category",
    "sku",
    "split",
    "item_id",
    "mask",
    "meta",
)


@dataclass(frozen=True)
class ManifestHeader:
    grade_labels: tuple[str, ...]  # ordered best -> worst
    damage_labels: tuple[str, ...]  # bit i of a mask = damage_labels[i]
    source: str = ""
    description: str = ""
    version: int = FORMAT_VERSION


@dataclass(frozen=True)
class ManifestRecord:
    """One photo. ``image``/``mask`` are absolute (resolved against the manifest dir)."""

    id: str
    image: Path
    grade: str | None
    damage: tuple[str, ...]
    category: str
    sku: str
    split: str
    item_id: str | None = None
    mask: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest. ``severity`` "warning" does not make it invalid."""

    line: int | None
    record_id: str | None
    code: str
    message: str
    severity: str = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def format(self) -> str:
        where = " ".join(
            part
            for part in (
                f"line {self.line}" if self.line is not None else "",
                f"[{self.record_id}]" if self.record_id is not None else "",
            )
            if part
        )
        note = "warning: " if not self.is_error else ""
        return f"{where or 'manifest'}: {self.code}: {note}{self.message}"


@dataclass(frozen=True)
class Manifest:
    path: Path
    header: ManifestHeader
    records: tuple[ManifestRecord, ...]

    def split(self, name: str) -> tuple[ManifestRecord, ...]:
        return tuple(r for r in self.records if r.split == name)

    def summary(self) -> dict[str, Any]:
        """Counts for humans and for the model card's training-data summary (JSON-ready)."""
        grades = self.header.grade_labels

        def counts(recs: Sequence[ManifestRecord]) -> dict[str, Any]:
            seen = Counter(r.grade for r in recs)
            return {
                "records": len(recs),
                "grades": {g: seen.get(g, 0) for g in grades},
                "unlabelled": seen.get(None, 0),
            }

        total = counts(self.records)
        damage = Counter(d for r in self.records for d in r.damage)
        return {
            "source": self.header.source,
            "records": len(self.records),
            "grade_labels": list(grades),
            "damage_labels": list(self.header.damage_labels),
            "splits": {s: counts(self.split(s)) for s in SPLITS},
            "grades": total["grades"],
            "unlabelled": total["unlabelled"],
            "damage": {d: damage.get(d, 0) for d in self.header.damage_labels},
            "no_damage": sum(1 for r in self.records if not r.damage),
            "categories": dict(sorted(Counter(r.category for r in self.records).items())),
            "skus": len({r.sku for r in self.records}),
            "items": len({r.item_id for r in self.records if r.item_id is not None}),
        }
