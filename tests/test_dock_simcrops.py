"""Dock-view training photos (serving/dock/simcrops.py): the station's crop, the sim's truth.

The adapted default model is fitted on these crops, so they must be what the station
grades: the box the presence trigger finds on the simulator's own frames, grown the way
the preparer grows it, and labelled with the simulator's ground truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from serving.dock.select import expand_box
from serving.dock.sim import SimConfig, SimTiming, plan, render_frames
from serving.dock.simcrops import CropConfig, _sprite_box, main, seed_crops, split_of
from serving.dock.trigger import PresenceTrigger
from vision.manifest import load_manifest
from vision.quality import PROFILES

SEED = 951  # no benchmark, no other test and no training recipe renders it
FAST = SimTiming(lead_in=0.8, gap=0.6, enter=0.8, retract=0.5, rest=1.2, fetch=0.5, exit=0.7)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def test_the_crop_box_is_the_box_the_trigger_finds() -> None:
    cfg = SimConfig(items=2, seed=SEED, hand_passes=0, flicker_episodes=0, timing=FAST)
    truth, frames = render_frames(cfg)
    shots, sprites, _ = plan(cfg)
    trigger = PresenceTrigger()
    boxes = {}
    for i, frame in enumerate(frames):
        update = trigger.update(frame)
        if update.fired:
            boxes[i] = update.bbox
    assert len(boxes) == 2
    for item in truth["items"]:
        lo, hi = item["frames"]["clear"]
        (fired_at,) = [i for i in boxes if lo <= i < hi]
        shot = shots[fired_at]
        ours = _sprite_box(sprites[shot.sprite], shot.pos, cfg.width, cfg.height)
        iou = _iou(ours, boxes[fired_at])
        print(f"{item['return_id']}: trigger box vs sprite box IoU {iou:.3f}")
        assert iou > 0.85


def test_crops_are_as_large_as_the_dock_gate_needs_and_labelled_with_the_truth() -> None:
    cfg = CropConfig(seeds=(SEED,), items=3)
    crops = seed_crops(cfg, SEED)
    _, _, truth = plan(SimConfig(items=3, seed=SEED))
    gate = PROFILES["dock"]  # what the preparer grows its crops to (Preparer.thresholds)
    assert [info["return_id"] for _, info in crops] == [t["return_id"] for t in truth["items"]]
    for (bgr, info), t in zip(crops, truth["items"], strict=True):
        h, w = bgr.shape[:2]
        assert max(h, w) >= gate.min_long_side
        assert min(h, w) >= gate.min_short_side
        assert info["grade"] == t["grade"] and info["sku"] == t["sku"]
        assert bgr.std() > 5  # a picture, not a blank


def test_expand_box_keeps_the_item_inside_the_crop() -> None:
    box = (0.4, 0.4, 0.6, 0.6)
    grown = expand_box(box, (720, 1280, 3), margin=0.15, min_size=(480, 360))
    assert grown[0] <= box[0] and grown[1] <= box[1] and grown[2] >= box[2] and grown[3] >= box[3]


def test_whole_seeds_go_to_one_split() -> None:
    cfg = CropConfig(seeds=tuple(range(10)))
    splits = [split_of(cfg, i) for i in range(10)]
    assert splits.count("train") == 6 and splits.count("val") == 2 and splits.count("test") == 2


def test_cli_writes_a_valid_manifest(tmp_path: Path, capsys: object) -> None:
    out = tmp_path / "dock-crops"
    assert main(["--out", str(out), "--first-seed", str(SEED), "--seeds", "5", "--items", "1"]) == 0
    manifest = load_manifest(out / "manifest.jsonl")
    assert len(manifest.records) == 5
    assert {r.split for r in manifest.records} == {"train", "val", "test"}
    by_seed = {r.meta["seed"]: r.split for r in manifest.records}
    assert sorted(by_seed) == list(range(SEED, SEED + 5))
    assert all(r.image.is_file() for r in manifest.records)
    assert np.all([r.sku.startswith(f"dock{r.meta['seed']}-") for r in manifest.records])


def test_two_processes_write_what_one_writes(tmp_path: Path) -> None:
    args = ["--first-seed", str(SEED), "--seeds", "5", "--items", "1"]
    assert main(["--out", str(tmp_path / "one"), *args]) == 0
    assert main(["--out", str(tmp_path / "two"), *args, "--jobs", "2"]) == 0
    one = load_manifest(tmp_path / "one" / "manifest.jsonl").records
    two = load_manifest(tmp_path / "two" / "manifest.jsonl").records
    assert [(r.id, r.split, r.grade) for r in one] == [(r.id, r.split, r.grade) for r in two]
    assert all(a.image.read_bytes() == b.image.read_bytes() for a, b in zip(one, two, strict=True))
