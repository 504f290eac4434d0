"""Dock accuracy: simulator videos -> the standalone station -> each inspection against
the simulator's ground truth.

The station runs exactly as ``returnlens dock --standalone`` does (``run_station``:
presence trigger, K sharpest frames, QR identification, crop, the dock quality gate, the
model, the dock policy); the harness only reads the spool it leaves behind. An
inspection is matched to a ground-truth item by the return id its QR label carried, else
by the frame at which the trigger fired (inside the item's enter..exit range), so an
unreadable label does not drop the item from the figures.

Routing needs the item's category and price, which the real dock gets from the return's
order. The standalone station has one ``--category``/``--price`` for the whole run, so
the harness prices each inspection again with the same policy and the item's own
category and price from the sidecar (``decide_disposition`` on the station's grade
probabilities). Whether the item went to review comes from the station's own result,
together with any review flag of that re-pricing: what the station decided stays the
source of truth.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness.accuracy_metrics import grade_figures
from benchmarks.harness.common import BenchConfig, log, read_json

GOOD_GRADES = ("A_new", "B_like_new", "C_good")
SALVAGE_TIER = "salvage"
WRITE_OFF_CHANNELS = ("liquidation", "recycle")  # channels that give a good item away


@dataclass(frozen=True)
class DockPlan:
    """Which simulator videos the section renders (seeds never used for training: the
    shipped model's dock-view crops come from seeds 600-899, `make default-model`)."""

    seeds: tuple[int, ...]
    items: int
    size: tuple[int, int]
    hand_passes: int
    flicker_episodes: int

    @classmethod
    def for_run(cls, quick: bool) -> DockPlan:
        if quick:
            return cls((31,), 2, (640, 360), 0, 0)
        # 4 x 12 = 48 items at 720p, where the simulator's QR labels are readable
        return cls((31, 32, 33, 34), 12, (1280, 720), 1, 1)


def _video(cfg: BenchConfig, plan: DockPlan, seed: int) -> Path:
    """Render (or reuse: the simulator is deterministic) one video and its sidecar."""
    from serving.dock.sim import SimConfig, sidecar_path, simulate

    w, h = plan.size
    path = cfg.tmp / "accuracy" / "dock" / f"seed{seed}_{w}x{h}_{plan.items}items.mp4"
    if path.is_file() and sidecar_path(path).is_file():
        return path
    log(f"  accuracy: simulating dock video seed {seed} ({plan.items} items, {w}x{h})")
    simulate(
        SimConfig(
            items=plan.items,
            seed=seed,
            width=w,
            height=h,
            hand_passes=plan.hand_passes,
            flicker_episodes=plan.flicker_episodes,
        ),
        path,
    )
    return path


def _inspections(work: Path) -> list[dict[str, Any]]:
    """Every inspection the station stored: its result plus the trigger's frame index."""
    from serving.dock.spool import Spool

    spool = Spool(work / "spool.db")
    try:
        out = []
        for key in spool.keys(None):  # every status: standalone rows are "delivered-local"
            item, result = spool.get(key), spool.result(key)
            if item is None or result is None:
                continue
            out.append({**result, "frame_index": item.meta.get("frame_index")})
        return out
    finally:
        spool.close()


def _match(truth: list[dict[str, Any]], found: list[dict[str, Any]]) -> tuple[dict[int, Any], int]:
    """Truth index -> its first inspection; and the count of inspections matching none."""
    by_id = {t["return_id"]: i for i, t in enumerate(truth)}
    matched: dict[int, Any] = {}
    extra = 0
    for ins in found:
        idx = by_id.get(ins.get("return_id") or "")
        if idx is None and ins.get("frame_index") is not None:
            f = int(ins["frame_index"])
            idx = next(
                (
                    i
                    for i, t in enumerate(truth)
                    if t["frames"]["enter"][0] <= f < t["frames"]["exit"][1]
                ),
                None,
            )
        if idx is None or idx in matched:
            extra += 1
        else:
            matched[idx] = ins
    return matched, extra


def _route(policy: Any, labels: tuple[str, ...], truth: dict[str, Any], ins: dict[str, Any]) -> Any:
    """The disposition the dock server would make for this item (its category and price)."""
    from serving.policy import DockContext, Scores, decide_disposition

    scores = Scores(labels, ins["grade_probs"], ins["damage_probs"])
    quality = ins.get("photo_quality") or [True]
    ctx = DockContext(
        category=truth["category"],
        price=float(truth["price"]),
        scores=scores,
        quality_passed=any(quality),
    )
    return decide_disposition(policy, ctx)


def _record(
    seed: int, truth: dict[str, Any], ins: dict[str, Any], policy: Any, labels: tuple[str, ...]
) -> dict[str, Any]:
    d = _route(policy, labels, truth, ins)
    flags = sorted({f["code"] for f in ins.get("flags", [])} | set(d.flag_codes))
    return {
        "seed": seed,
        "return_id": truth["return_id"],
        "sku": truth.get("sku"),
        "category": truth["category"],
        "price": truth["price"],
        "true_grade": truth["grade"],
        "grade": ins["grade"],
        "confidence": round(max(ins["grade_probs"].values()), 4),
        "identified_by": ins.get("id_source"),
        "review": bool(ins.get("needs_review")) or d.needs_review,
        "flags": flags,
        "tier": d.tier,
        "channel": d.channel,
    }


def _write_offs(records: list[dict[str, Any]]) -> dict[str, int]:
    """Good (A/B/C) items given away: salvage tier, liquidation or recycle channel."""
    good = [r for r in records if r["true_grade"] in GOOD_GRADES]
    out = {"salvage_tier": sum(r["tier"] == SALVAGE_TIER for r in good)}
    out.update({ch: sum(r["channel"] == ch for r in good) for ch in WRITE_OFF_CHANNELS})
    out["any"] = sum(r["tier"] == SALVAGE_TIER or r["channel"] in WRITE_OFF_CHANNELS for r in good)
    return out


def dock_accuracy(cfg: BenchConfig, model: Path) -> dict[str, Any]:
    """Run the standalone station on every planned video and score it against the truth."""
    from serving.dock.app import DockOptions, run_station
    from serving.dock.sim import sidecar_path
    from serving.policy import load_policy
    from vision.model import OnnxModel

    plan = DockPlan.for_run(cfg.quick)
    card = OnnxModel(model, intra_op_threads=1).card
    # what `returnlens dock --standalone` resolves: the shipped policy, the card's thresholds
    policy = load_policy(None).for_model(card.thresholds)
    labels = tuple(card.grade_labels)
    records: list[dict[str, Any]] = []
    videos: list[dict[str, Any]] = []
    missed: list[str] = []
    extra = 0
    for seed in plan.seeds:
        video = _video(cfg, plan, seed)
        truth = read_json(sidecar_path(video)) or {}
        work = cfg.tmp / "accuracy" / "dock" / f"run-seed{seed}"
        shutil.rmtree(work, ignore_errors=True)  # the event log and the spool append
        summary = run_station(DockOptions(source=str(video), out=work, model=model))
        found = _inspections(work)
        matched, n_extra = _match(truth["items"], found)
        extra += n_extra
        for i, item in enumerate(truth["items"]):
            if i in matched:
                records.append(_record(seed, item, matched[i], policy, labels))
            else:
                missed.append(item["return_id"])
        videos.append(
            {
                "seed": seed,
                "video": video.name,
                "items": len(truth["items"]),
                "inspections": len(found),
                "frames": summary.get("frames"),
            }
        )
        log(f"  accuracy: dock seed {seed}: {len(matched)}/{len(truth['items'])} inspected")
    routed = [r for r in records if not r["review"]]
    review = [r for r in records if r["review"]]
    figures = grade_figures(labels, [(r["true_grade"], r["grade"]) for r in records])
    return {
        "videos": videos,
        "size": list(plan.size),
        "items": sum(v["items"] for v in videos),
        "inspected": len(records),
        "missed": missed,
        "extra_inspections": extra,
        "identified_by_qr": sum(r["identified_by"] == "qr" for r in records),
        "grades": figures,
        "routed": len(routed),
        "review": len(review),
        "review_flags": dict(Counter(f for r in review for f in r["flags"])),
        "channels": dict(Counter(str(r["channel"]) for r in routed)),
        "good_written_off": _write_offs(routed),
        "good_written_off_without_review": _write_offs(records),
        "per_item": records,
    }
