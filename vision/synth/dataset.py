"""Write a synthetic dataset: images, damage masks, manifest, catalog and reference photos.

Every image is a pure function of ``(config, index)``: the item plan comes from
``(seed, item_index)`` and the photo from ``(seed, index)``, so the output is
byte-identical for any worker count and any chunking.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from vision.errors import ConfigError, ReturnLensError
from vision.fsio import atomic_path
from vision.synth.catalog import SkuSpec, catalog_skus
from vision.synth.labels import BAD_KINDS, CATEGORIES, DAMAGE_LABELS, GRADE_LABELS
from vision.synth.outdir import prepare_output as _prepare
from vision.synth.scene import BACKGROUNDS, render_photo, render_reference
from vision.synth.state import ItemState, sample_state

SPLITS = ("train", "val", "test")
_GOLDEN = 0.6180339887498949
_PLASTIC = 0.7548776662466927
CHUNK = 48


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. ``count`` is the number of photos; ``photos_per_item`` views of
    each physical item share its ``item_id``."""

    count: int
    seed: int = 0
    image_size: int = 256
    bad_photo_fraction: float = 0.0
    skus_per_category: int = 4
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    photos_per_item: int = 1
    jpeg_quality: tuple[int, int] = (60, 95)
    reference_size: int = 256
    variety: Literal["classic", "wide"] = "classic"  # vision/synth/variety.py
    dock_share: float = 0.35  # wide only: share of dock-camera scenes

    def validate(self) -> None:
        """Refuse impossible settings with one sentence each."""
        problems = []
        if self.count <= 0:
            problems.append(f"count must be a positive number of photos (got {self.count})")
        if not 64 <= self.image_size <= 2048:
            problems.append(f"image size must be between 64 and 2048 px (got {self.image_size})")
        if not 0.0 <= self.bad_photo_fraction <= 1.0:
            problems.append(
                f"bad-photo fraction must be within 0..1 (got {self.bad_photo_fraction})"
            )
        if not 1 <= self.skus_per_category <= 32:
            problems.append(f"SKUs per category must be 1..32 (got {self.skus_per_category})")
        if not 1 <= self.photos_per_item <= 6:
            problems.append(f"photos per item must be 1..6 (got {self.photos_per_item})")
        fr = self.split_fractions
        if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6:
            problems.append(
                f"split fractions must be three non-negative numbers summing to 1 (got {fr})"
            )
        lo, hi = self.jpeg_quality
        if not 1 <= lo <= hi <= 100:
            problems.append(
                f"JPEG quality range must satisfy 1 <= low <= high <= 100 (got {lo}..{hi})"
            )
        if self.variety not in ("classic", "wide") or not 0.0 <= self.dock_share <= 1.0:
            problems.append(
                f"variety must be classic or wide and dock share within 0..1 "
                f"(got {self.variety!r}, {self.dock_share})"
            )
        if problems:
            raise ConfigError(
                "; ".join(problems) + ".", code="invalid_argument", details={"problems": problems}
            )


@dataclass(frozen=True)
class ItemPlan:
    item_index: int
    sku: SkuSpec
    state: ItemState
    split: str


@lru_cache(maxsize=8)
def _skus(seed: int, per_category: int) -> dict[str, tuple[SkuSpec, ...]]:
    by_cat: dict[str, list[SkuSpec]] = {c: [] for c in CATEGORIES}
    for s in catalog_skus(seed, per_category):
        by_cat[s.category].append(s)
    return {c: tuple(v) for c, v in by_cat.items()}


def _balanced(seed: int, salt: int, index: int, n: int) -> int:
    """Index -> 0..n-1, a fresh random permutation in every block of n (balanced counts)."""
    return int(np.random.default_rng([seed, salt, index // n]).permutation(n)[index % n])


def split_of(config: SynthConfig, item_index: int) -> str:
    """Low-discrepancy per-item split: proportions hold even for a few dozen items."""
    offset = np.random.default_rng([config.seed, 31]).random()
    u = (item_index * _GOLDEN + offset) % 1.0
    a, b, _ = config.split_fractions
    return SPLITS[0] if u < a else SPLITS[1] if u < a + b else SPLITS[2]


def plan_item(config: SynthConfig, item_index: int) -> ItemPlan:
    """The physical item behind ``item_index``: SKU, state (grade-balanced) and split."""
    grade = GRADE_LABELS[_balanced(config.seed, 11, item_index, len(GRADE_LABELS))]
    category = CATEGORIES[_balanced(config.seed, 13, item_index, len(CATEGORIES))]
    rng = np.random.default_rng([config.seed, 17, item_index])
    options = _skus(config.seed, config.skus_per_category)[category]
    sku = options[int(rng.integers(0, len(options)))]
    state = sample_state(sku, grade, rng)
    return ItemPlan(item_index, sku, state, split_of(config, item_index))


def bad_kind_of(config: SynthConfig, index: int) -> str | None:
    if config.bad_photo_fraction <= 0:
        return None
    if ((index + 1) * _PLASTIC) % 1.0 >= config.bad_photo_fraction:
        return None
    return BAD_KINDS[
        int(np.random.default_rng([config.seed, 29, index]).integers(0, len(BAD_KINDS)))
    ]


def render_record(config: SynthConfig, index: int) -> tuple[dict[str, Any], bytes, bytes]:
    """One photo: its manifest record, JPEG bytes and mask PNG bytes."""
    if config.variety == "wide":
        from vision.synth.variety import render_wide_record

        return render_wide_record(config, index)
    item_index = index // config.photos_per_item
    plan = plan_item(config, item_index)
    rng = np.random.default_rng([config.seed, 23, index])
    kind = BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))]
    bad = bad_kind_of(config, index)
    rgb, mask = render_photo(plan.sku, plan.state, rng, config.image_size, background=kind, bad=bad)
    return encode_record(config, index, plan, rgb, mask, rng, bad=bad, scene={"background": kind})


def encode_record(
    config: SynthConfig,
    index: int,
    plan: ItemPlan,
    rgb: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    *,
    bad: str | None,
    scene: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], bytes, bytes]:
    """A rendered photo's JPEG (quality drawn from ``rng``), mask PNG and manifest record.

    Shared by every variety so the record format cannot drift between them. ``scene``
    goes before the JPEG quality in ``meta`` and ``extra`` after it: the key order is part
    of the classic manifest's bytes, which pin the shipped model's training data.
    """
    quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
    ok1, jpg = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    ok2, png = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not (ok1 and ok2):
        raise ReturnLensError("OpenCV could not encode a generated image.", code="encode_failed")
    name = f"{index:06d}"
    # Wide photos get their own ids, so a classic and a wide set of one seed (one
    # catalog) merge into the default recipe's training data without colliding.
    prefix = "" if config.variety == "classic" else f"{config.variety}-"
    record = {
        "id": f"{prefix or 'synth-'}{name}",
        "image": f"images/{name}.jpg",
        "grade": plan.state.grade,
        "damage": plan.state.labels,
        "category": plan.sku.category,
        "sku": plan.sku.sku,
        "split": plan.split,
        "item_id": f"{prefix}item-{plan.item_index:06d}",
        "mask": f"masks/{name}.png",
        "meta": {
            "severity": dict(plan.state.damage),
            "packaging": plan.state.packaging,
            "retail_box": plan.state.tray,
            "view": index % config.photos_per_item,
            **scene,
            "jpeg_quality": quality,
            "bad": bad,
            **(extra or {}),
        },
    }
    return record, jpg.tobytes(), png.tobytes()


def _render_chunk(job: tuple[str, SynthConfig, int, int]) -> list[dict[str, Any]]:
    out, config, start, stop = job
    root = Path(out)
    records = []
    for index in range(start, stop):
        record, jpg, png = render_record(config, index)
        (root / record["image"]).write_bytes(jpg)
        (root / record["mask"]).write_bytes(png)
        records.append(record)
    return records


def _init_worker() -> None:
    cv2.setNumThreads(1)


def write_catalog(out_dir: Path, config: SynthConfig) -> Path:
    """``catalog.jsonl`` plus one clean reference photo per SKU under ``catalog/``."""
    lines = []
    for sku in catalog_skus(config.seed, config.skus_per_category):
        ref = f"catalog/{sku.sku}.jpg"
        rgb = render_reference(sku, config.reference_size)
        _, jpg = cv2.imencode(
            ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]
        )
        (out_dir / ref).write_bytes(jpg.tobytes())
        lines.append(
            json.dumps(
                {
                    "sku": sku.sku,
                    "category": sku.category,
                    "name": sku.name,
                    "price": sku.price,
                    "reference": ref,
                }
            )
        )
    path = out_dir / "catalog.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _chunks(out: str, config: SynthConfig) -> Iterator[tuple[str, SynthConfig, int, int]]:
    for start in range(0, config.count, CHUNK):
        yield out, config, start, min(config.count, start + CHUNK)


def header() -> dict[str, Any]:
    return {
        "kind": "returnlens-manifest",
        "version": 1,
        "grade_labels": list(GRADE_LABELS),
        "damage_labels": list(DAMAGE_LABELS),
        "source": "synth",
        "description": "Procedurally rendered photos of returned items (returnlens synth); grades "
        "follow the rule documented in vision/synth/labels.py.",
    }


def generate_dataset(
    out_dir: Path, config: SynthConfig, *, workers: int = 2, progress: bool = True
) -> Path:
    """Render ``config.count`` photos into ``out_dir``; returns the manifest path."""
    config.validate()
    if workers < 1:
        raise ConfigError(f"workers must be at least 1 (got {workers}).", code="invalid_argument")
    out_dir = Path(out_dir)
    _prepare(out_dir)
    try:
        fields = asdict(config)
        if config.variety == "classic":  # the classic synth_config.json stays byte-identical
            del fields["variety"], fields["dock_share"]
        cfg = json.dumps(fields, indent=2) + "\n"
        (out_dir / "synth_config.json").write_text(cfg, encoding="utf-8")
        write_catalog(out_dir, config)
        records: list[dict[str, Any]] = []
        from tqdm import tqdm

        bar = tqdm(total=config.count, unit="img", desc="synth", disable=not progress)
        if workers == 1:
            _init_worker()
            for job in _chunks(str(out_dir), config):
                records.extend(_render_chunk(job))
                bar.update(job[3] - job[2])
        else:  # spawn: forking after OpenCV started its thread pool can deadlock the children
            with multiprocessing.get_context("spawn").Pool(
                workers, initializer=_init_worker
            ) as pool:
                for chunk in pool.imap(_render_chunk, _chunks(str(out_dir), config)):
                    records.extend(chunk)
                    bar.update(len(chunk))
        bar.close()
        manifest = out_dir / "manifest.jsonl"
        with atomic_path(manifest) as tmp, tmp.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps(header()) + "\n")
            for r in records:
                fh.write(json.dumps(r) + "\n")
    except OSError as exc:
        raise ReturnLensError(
            f"Writing the dataset to {out_dir} failed: {exc.strerror or exc}.",
            code="unwritable_output",
        ) from exc
    return manifest
