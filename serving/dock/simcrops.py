"""Dock-view training photos from the simulator: each item at rest, cropped as the station crops.

The station grades crops of full dock frames: the trigger's foreground box (the item, its
parcel label and its shadow) grown by the preparer's margin to at least the dock quality
profile's resolution, JPEG-encoded at the preparer's quality. This module renders the
same scenes the simulator renders (``serving.dock.sim.plan``: the same catalog, item
states, labels, table and placement for a seed) but only the frames it needs, one still
frame per item with no hand in view, and crops them the same way with the sprite's box
standing in for the trigger's. The result is a labelled manifest (grade and damage from
the simulator's ground truth) for ``returnlens adapt``.

Use seeds that no benchmark or test renders (the accuracy benchmark uses 31-34): a
photo the model was fitted on says nothing about its accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from serving.dock.select import Box, crop, expand_box
from serving.dock.sim import SimConfig, plan
from serving.dock.simdraw import paste, table_texture
from vision.errors import ConfigError

if TYPE_CHECKING:
    from vision.manifest import ManifestRecord

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class CropConfig:
    seeds: tuple[int, ...]
    items: int = 12  # per seed (one simulated video's worth)
    width: int = 1280
    height: int = 720
    margin: float = 0.15  # the preparer's default
    min_size: tuple[int, int] = (480, 360)  # the dock quality profile's resolution bound
    jpeg_quality: int = 92  # the preparer's default
    val_every: int = 5  # every n-th seed is validation, the one after it test


def split_of(cfg: CropConfig, position: int) -> str:
    """Whole seeds go to one split, so a catalog never straddles train and validation."""
    r = position % cfg.val_every
    return "val" if r == cfg.val_every - 2 else "test" if r == cfg.val_every - 1 else "train"


def _sprite_box(sprite: Any, pos: tuple[int, int], w: int, h: int) -> Box:
    """The sprite's opaque extent (item and label) in frame fractions: what the trigger's
    foreground mask finds on the table (its soft shadow mostly stays under the threshold)."""
    ys, xs = np.nonzero(sprite.alpha > 0.5)
    x0, y0 = pos[0] + int(xs.min()), pos[1] + int(ys.min())
    x1, y1 = pos[0] + int(xs.max()) + 1, pos[1] + int(ys.max()) + 1
    return (max(0, x0) / w, max(0, y0) / h, min(w, x1) / w, min(h, y1) / h)


def seed_crops(cfg: CropConfig, seed: int) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """(BGR crop, ground truth) for each item of one simulated video."""
    sim = SimConfig(items=cfg.items, seed=seed, width=cfg.width, height=cfg.height)
    shots, sprites, truth = plan(sim)
    rng = np.random.default_rng([seed, 1])  # the simulator's render stream: the same table
    table = table_texture(cfg.width, cfg.height, rng)
    out = []
    for info in truth["items"]:
        a, b = info["frames"]["clear"]
        i = (a + b) // 2  # mid-way through the still window, no hand in view
        shot = shots[i]
        assert shot.sprite is not None
        frame = table.copy()
        paste(frame, sprites[shot.sprite], *shot.pos)
        mains = 1.0 + 0.015 * np.sin(2 * np.pi * i * 0.37)
        frame = cv2.convertScaleAbs(frame, alpha=mains)
        noise = np.abs(rng.normal(0, 2.0, frame.shape)).astype(np.uint8)
        cv2.add(frame, noise, dst=frame)
        box = _sprite_box(sprites[shot.sprite], shot.pos, cfg.width, cfg.height)
        region = expand_box(box, frame.shape, margin=cfg.margin, min_size=cfg.min_size)
        out.append((crop(frame, region).copy(), info))
    return out


def _seed_records(cfg: CropConfig, images: Path, pos: int, seed: int) -> list[ManifestRecord]:
    """Render one seed's items, write their JPEGs and return their manifest records."""
    from vision.manifest import ManifestRecord

    records = []
    for bgr, info in seed_crops(cfg, seed):
        rid = f"dock-{seed}-{info['index']:03d}"
        path = images / f"{rid}.jpg"
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
        if not ok:
            raise ConfigError(f"cannot encode {rid}", code="encode_failed")
        path.write_bytes(buf.tobytes())
        records.append(
            ManifestRecord(
                id=rid,
                image=path.resolve(),
                grade=info["grade"],
                damage=tuple(sorted({k for k, _ in info.get("damage", [])})),
                category=info["category"],
                sku=f"dock{seed}-{info['sku']}",  # the catalog differs per seed
                split=split_of(cfg, pos),
                item_id=rid,
                meta={
                    "scene": "dock-sim",
                    "seed": seed,
                    "severity": {k: v for k, v in info.get("damage", [])},
                },
            )
        )
    return records


def write_crops(cfg: CropConfig, out: Path, jobs: int = 1) -> dict[str, Any]:
    """Render every seed's items, write ``out/images/*.jpg`` and ``out/manifest.jsonl``.

    Seeds are independent renders, so ``jobs`` processes share them; the manifest keeps
    the seeds' order whatever the number of processes, so the output is the same.
    """
    from concurrent.futures import ProcessPoolExecutor

    from vision.manifest import ManifestHeader, write_manifest
    from vision.synth.labels import DAMAGE_LABELS, GRADE_LABELS

    if not cfg.seeds:
        raise ConfigError("give at least one seed", code="invalid_argument")
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    n = len(cfg.seeds)
    work = ([cfg] * n, [images] * n, range(n), cfg.seeds)
    if jobs <= 1:
        records = [r for chunk in map(_seed_records, *work) for r in chunk]
    else:
        with ProcessPoolExecutor(jobs) as pool:
            records = [r for chunk in pool.map(_seed_records, *work) for r in chunk]
    header = ManifestHeader(
        GRADE_LABELS,
        DAMAGE_LABELS,
        source="dock-sim",
        description="Dock-simulator items at rest, cropped as the dock station crops "
        f"(serving/dock/simcrops.py); seeds {cfg.seeds[0]}-{cfg.seeds[-1]}.",
    )
    write_manifest(out / "manifest.jsonl", header, records)
    counts = {s: sum(r.split == s for r in records) for s in SPLITS}
    return {"photos": len(records), "splits": counts, "manifest": str(out / "manifest.jsonl")}


def with_seeds(cfg: CropConfig, first: int, count: int) -> CropConfig:
    return replace(cfg, seeds=tuple(range(first, first + count)))


def main(argv: list[str] | None = None) -> int:
    """``python -m serving.dock.simcrops --out DIR --first-seed N --seeds COUNT``."""
    import argparse
    import json

    p = argparse.ArgumentParser(
        prog="python -m serving.dock.simcrops",
        description="Write dock-view training photos (simulator items at rest, cropped as "
        "the dock station crops them) and their manifest, for `returnlens adapt`.",
    )
    p.add_argument("--out", type=Path, required=True, help="folder for images/ and manifest")
    p.add_argument("--first-seed", type=int, default=600, help="first simulator seed")
    p.add_argument("--seeds", type=int, default=300, help="how many seeds (videos' worth)")
    p.add_argument("--items", type=int, default=12, help="items per seed")
    p.add_argument("--jobs", type=int, default=1, help="processes rendering seeds at once")
    args = p.parse_args(argv)
    if args.seeds < 5 or args.items < 1:
        raise SystemExit("need at least 5 seeds (train, val and test splits) and 1 item")
    cfg = with_seeds(CropConfig(seeds=(), items=args.items), args.first_seed, args.seeds)
    print(json.dumps(write_crops(cfg, args.out, jobs=args.jobs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
