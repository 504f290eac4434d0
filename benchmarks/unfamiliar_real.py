"""Is the shipped model ever confidently wrong on real photos it never trained on?

For each photo set: how many photos the unfamiliarity score flags, how accurate and how
well calibrated the grade is on the familiar rest, and the share of photos that would be
*auto-decided and wrongly graded*: familiar, grade confidence >= the policy's confidence
threshold (the card's ``auto_approve_confidence``, which ``serving/policy/default.yaml``
leaves to the card) and a wrong grade. The issue's target is
at most 5% on any real set. The false-alarm rate on held-out synthetic TEST photos (the
model's own world, never trained on) is reported alongside.

Sets:

* ``car-damage``: ``../shared/datasets/car-damage-severity`` (all splits; minor ->
  C_good, moderate -> D_fair, severe -> E_damaged, as ``make real-data`` imports it).
* ``elpv``: ``../shared/datasets/elpv`` solar-cell images, whose grades (p0..p100) are
  not the model's: no grade it can give is right, so every auto-decision counts as wrong.
* ``skimage``: scikit-image's bundled sample photos (astronaut, coffee, chelsea, ...):
  clearly foreign, no right grade, same rule.
* ``synthetic-test-classic`` / ``-wide``: the TEST splits of the default recipe's two
  synthetic sets (``make default-model``; seed 7), never trained on.

Photos go through serving's decode and the model card's preprocessing
(``vision.pipeline.decode_for_grading`` + ``OnnxModel.predict_images``). The quality
gate is left out on purpose: it would only remove photos from the auto-decided share, so
the figures are an upper bound on what the service auto-decides.

    python benchmarks/unfamiliar_real.py [--model M.onnx] [--limit N]

Writes ``benchmarks/results/unfamiliar_real.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vision.manifest import import_folder, load_manifest  # noqa: E402
from vision.model import ModelOutputs, OnnxModel  # noqa: E402
from vision.pipeline import decode_for_grading  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"
CAR_MAP = {"minor": "C_good", "moderate": "D_fair", "severe": "E_damaged"}
CONFIDENCE = 0.7  # the policy's own default, for a card that suggests no confidence
TARGET = 0.05  # issue 14: at most 5% auto-decided and wrong on any real set
SKIMAGE = [
    "astronaut",
    "camera",
    "cat",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "brick",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
]
OUT = ROOT / "benchmarks" / "results"


@dataclass
class PhotoSet:
    name: str
    note: str
    images: list[Any]  # paths or RGB arrays
    labels: list[str | None]  # the right grade, None: no grade the model can give is right


def car_damage(limit: int | None) -> PhotoSet:
    manifest = ROOT / "datasets" / "generated" / "car-damage" / "manifest.jsonl"
    if not manifest.is_file():
        import_folder(SHARED / "car-damage-severity", manifest, grade_map=CAR_MAP, category="car")
    recs = _every(list(load_manifest(manifest).records), limit)
    return PhotoSet(
        "car-damage",
        "real car photos; minor/moderate/severe -> C_good/D_fair/E_damaged",
        [r.image for r in recs],
        [r.grade for r in recs],
    )


def elpv(limit: int | None) -> PhotoSet:
    paths = _every(sorted((SHARED / "elpv" / "images").glob("*.png")), limit)
    return PhotoSet(
        "elpv", "solar-cell EL images: no model grade is right", paths, [None] * len(paths)
    )


def skimage_photos() -> PhotoSet:
    from skimage import data

    images = []
    for name in SKIMAGE:
        a = np.asarray(getattr(data, name)())
        if a.ndim == 2:
            a = np.stack([a] * 3, axis=-1)
        if a.dtype != np.uint8:
            a = (255 * (a.astype(np.float64) / max(float(a.max()), 1e-9))).astype(np.uint8)
        images.append(np.ascontiguousarray(a[..., :3]))
    return PhotoSet(
        "skimage",
        "scikit-image sample photos: no model grade is right",
        images,
        [None] * len(images),
    )


def synthetic_test(limit: int | None, variety: str) -> PhotoSet | None:
    """The TEST split of the default recipe's synthetic set of this variety (seed 7,
    never trained on): the in-distribution false-alarm rate. None when not generated."""
    folder = {"classic": "synth", "wide": "synth-wide"}[variety]
    path = ROOT / "datasets" / "generated" / folder / "manifest.jsonl"
    if not path.is_file():
        print(f"skipping synthetic-test-{variety}: {path} is missing (make default-model)")
        return None
    recs = _every(list(load_manifest(path).split("test")), limit)
    return PhotoSet(
        f"synthetic-test-{variety}",
        f"held-out synthetic {variety} photos (seed 7 TEST split): the false-alarm rate",
        [r.image for r in recs],
        [r.grade for r in recs],
    )


def _every(items: list[Any], limit: int | None) -> list[Any]:
    if limit is None or len(items) <= limit:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def _batches(model: OnnxModel, images: list[Any], size: int = 32) -> Iterator[ModelOutputs]:
    side = model.card.preprocess.input_size
    for start in range(0, len(images), size):
        chunk = images[start : start + size]
        rgb = [
            decode_for_grading(x.read_bytes(), side).rgb if isinstance(x, Path) else x
            for x in chunk
        ]
        yield model.predict_images(rgb)


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float | None:
    """Expected calibration error of the top-class confidence (equal-width bins)."""
    if len(labels) == 0:
        return None
    conf, right = probs.max(axis=1), probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(right[m].mean() - conf[m].mean())
    return float(total)


def measure(model: OnnxModel, ps: PhotoSet, confidence: float) -> dict[str, Any]:
    parts = list(_batches(model, ps.images))
    probs = np.concatenate([p.grade_probs for p in parts])
    familiar = np.concatenate([_familiar(p) for p in parts])
    index = {g: i for i, g in enumerate(model.card.grade_labels)}
    y = np.array([index.get(g, -1) if g is not None else -1 for g in ps.labels])
    right = probs.argmax(axis=1) == y  # -1 (no right grade) is never right
    auto = familiar & (probs.max(axis=1) >= confidence)
    rest = familiar & (y >= 0)
    n = len(y)
    return {
        "set": ps.name,
        "note": ps.note,
        "photos": n,
        "flagged_unfamiliar": round(float((~familiar).mean()), 4),
        "familiar_photos": int(familiar.sum()),
        "familiar_accuracy": round(float(right[rest].mean()), 4) if rest.any() else None,
        "familiar_ece": _round(ece(probs[rest], y[rest])),
        "auto_decided": round(float(auto.mean()), 4),
        "auto_decided_and_wrong": round(float((auto & ~right).mean()), 4),
        "accuracy_all": round(float(right[y >= 0].mean()), 4) if (y >= 0).any() else None,
        "median_unfamiliarity": round(float(np.median(_scores(parts))), 3),
    }


def _familiar(out: ModelOutputs) -> np.ndarray:
    if out.familiar is None:  # a model without the score: nothing can be trusted
        return np.zeros(len(out), dtype=bool)
    return out.familiar


def _scores(parts: list[ModelOutputs]) -> np.ndarray:
    got = [p.unfamiliarity for p in parts if p.unfamiliarity is not None]
    return np.concatenate(got) if got else np.array([np.nan])


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def markdown(report: dict[str, Any]) -> str:
    m = report["model"]
    lines = [
        "# Unfamiliar photos: is the shipped model ever confidently wrong?",
        "",
        f"{report['date']} on {report['machine']['cpu']} ({report['machine']['cores']} cores), "
        f"model {m['version']} (threshold {m['threshold']:.4f}, method {m['method']}, val "
        f"false-alarm rate {_pct(m['false_alarm_rate'])}). Auto-decided = familiar and "
        f"grade confidence >= {report['confidence']}; target: auto-decided and wrong <= "
        f"{_pct(report['target'])} on every real set. Produced by "
        "`python benchmarks/unfamiliar_real.py`.",
        "",
        "| set | photos | flagged unfamiliar | familiar accuracy | familiar ECE "
        "| auto-decided | auto-decided and wrong |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["sets"]:
        ece_text = "n/a" if r["familiar_ece"] is None else f"{r['familiar_ece']:.3f}"
        lines.append(
            f"| {r['set']} | {r['photos']} | {_pct(r['flagged_unfamiliar'])} | "
            f"{_pct(r['familiar_accuracy'])} | {ece_text} | {_pct(r['auto_decided'])} | "
            f"{_pct(r['auto_decided_and_wrong'])} |"
        )
    lines += ["", *(f"- {r['set']}: {r['note']}." for r in report["sets"])]
    lines += [
        "- The quality gate is not applied: it only removes photos from the auto-decided "
        "share, so these are upper bounds.",
        "- Not a blind test: the threshold's default target rate (1.5% of val photos, "
        "`vision/unfamiliarity.py`) was chosen with the car set in view, on the previous "
        "model (synth-lite0-v1): fitted at 1%, that model let 8.9% of the car photos "
        "through and 5.2% were auto-decided and wrong; real photos sit just above the "
        "in-distribution tail.",
        f"- Target met on every real set: {'yes' if report['target_met'] else 'NO'}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "serving/models/returnlens-default.onnx")
    ap.add_argument("--limit", type=int, default=None, help="photos per set at most")
    ap.add_argument(
        "--confidence",
        type=float,
        default=None,
        help="auto-decision confidence (default: the card's auto_approve_confidence, which "
        "the shipped policy uses; 0.7 for a card without one)",
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    model = OnnxModel(args.model)
    spec = model.card.unfamiliarity
    confidence = args.confidence
    if confidence is None:  # what the shipped policy uses: the card's suggestion
        confidence = model.card.thresholds.get("auto_approve_confidence", CONFIDENCE)
    sets = [
        car_damage(args.limit),
        elpv(args.limit),
        skimage_photos(),
        synthetic_test(args.limit, "classic"),
        synthetic_test(args.limit, "wide"),
    ]
    results = []
    for ps in sets:
        if ps is not None:
            results.append(measure(model, ps, confidence))
            print(json.dumps(results[-1]))
    real = [r for r in results if not r["set"].startswith("synthetic-test")]
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "model": {
            "version": model.version,
            "sha256": model.sha256,
            "method": None if spec is None else spec.method,
            "threshold": None if spec is None else spec.threshold,
            "false_alarm_rate": None if spec is None else spec.false_alarm_rate,
        },
        "confidence": confidence,
        "target": TARGET,
        "target_met": all(r["auto_decided_and_wrong"] <= TARGET for r in real),
        "sets": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "unfamiliar_real.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "unfamiliar_real.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
