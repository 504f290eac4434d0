"""Check the policy's model thresholds against a model on a labelled synthetic set.

    python benchmarks/policy_check.py --model serving/models/returnlens-default.onnx \
        --data datasets/generated/synth --out benchmarks/results/policy_check.json

Two thresholds in ``serving/policy/default.yaml`` read model outputs:

* ``wrong_item.min_similarity``: cosine similarity between a photo's embedding and its
  SKU's catalog reference photo. Reported: the distribution for the right SKU, for
  another SKU of the same category, and for another category, and the share of each
  flagged at candidate thresholds (right SKU flagged = false alarms sent to review).
* ``confidence.min_confidence``: below it the service abstains (needs_review). Reported:
  for candidate thresholds, the share of photos decided and the accuracy of those.

Photos go through ``vision`` exactly as the service runs them (decode, card preprocess,
ONNX Runtime). Results are JSON plus a short Markdown table printed to stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from vision.model import OnnxModel
from vision.pipeline import Grader

SIMILARITY_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
CONFIDENCE_GRID = (0.4, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9)


def _records(data: Path, split: str, limit: int) -> list[dict[str, Any]]:
    lines = (data / "manifest.jsonl").read_text().splitlines()[1:]
    rows = [json.loads(line) for line in lines if line.strip()]
    return [r for r in rows if r["split"] == split and r.get("grade")][:limit]


def _embed_all(grader: Grader, paths: list[Path], batch: int = 64) -> tuple[np.ndarray, ...]:
    emb, probs = [], []
    for start in range(0, len(paths), batch):
        photos = [grader.decode(p.read_bytes()) for p in paths[start : start + batch]]
        out = grader.model.predict_images([p.rgb for p in photos])
        emb.append(out.embedding)
        probs.append(out.grade_probs)
        print(f"  {min(start + batch, len(paths))}/{len(paths)} photos", flush=True)
    return np.concatenate(emb), np.concatenate(probs)


def _flagged(values: np.ndarray, grid: tuple[float, ...]) -> dict[str, float]:
    return {f"{t:.2f}": round(float(np.mean(values < t)), 4) for t in grid}


def check(model_path: Path, data: Path, split: str, limit: int) -> dict[str, Any]:
    grader = Grader(OnnxModel(model_path))
    card = grader.card
    records = _records(data, split, limit)
    emb, probs = _embed_all(grader, [data / r["image"] for r in records])
    skus = sorted({p.stem for p in (data / "catalog").glob("*.jpg")})
    ref = np.stack(
        [grader.embed(grader.decode((data / "catalog" / f"{s}.jpg").read_bytes())) for s in skus]
    )
    sims = emb @ ref.T  # both L2-normalised
    index = {s: i for i, s in enumerate(skus)}
    own = np.array([sims[k, index[r["sku"]]] for k, r in enumerate(records)])
    category = np.array([s.split("-")[0] for s in skus])
    same_cat, other_cat = [], []
    for k, r in enumerate(records):
        mask_same = (category == r["category"]) & (np.array(skus) != r["sku"])
        same_cat.append(sims[k, mask_same].max())
        other_cat.append(sims[k, category != r["category"]].max())
    truth = np.array([card.grade_labels.index(r["grade"]) for r in records])
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)

    def dist(x: list[float] | np.ndarray) -> dict[str, float]:
        a = np.asarray(x)
        return {
            q: round(float(np.percentile(a, p)), 4)
            for q, p in (("p1", 1), ("p5", 5), ("p50", 50), ("p95", 95), ("p99", 99))
        }

    coverage = {
        f"{t:.2f}": {
            "decided": round(float(np.mean(conf >= t)), 4),
            "accuracy": round(float(np.mean((pred == truth)[conf >= t])), 4)
            if np.any(conf >= t)
            else None,
        }
        for t in CONFIDENCE_GRID
    }
    return {
        "model_version": card.model_version,
        "photos": len(records),
        "split": split,
        "similarity": {
            "right_sku": dist(own),
            "other_sku_same_category": dist(same_cat),
            "other_category": dist(other_cat),
            "right_sku_flagged": _flagged(own, SIMILARITY_GRID),
            "other_category_caught": _flagged(np.asarray(other_cat), SIMILARITY_GRID),
            "other_sku_same_category_caught": _flagged(np.asarray(same_cat), SIMILARITY_GRID),
        },
        "confidence": coverage,
        "card_thresholds": card.thresholds,
    }


def markdown(res: dict[str, Any]) -> str:
    sim = res["similarity"]
    lines = [
        f"Model `{res['model_version']}`, {res['photos']} {res['split']} photos.",
        "",
        "| min_similarity | right SKU flagged | other SKU (same category) caught | "
        "other category caught |",
        "|---|---|---|---|",
    ]
    for t in sim["right_sku_flagged"]:
        lines.append(
            f"| {t} | {sim['right_sku_flagged'][t]:.3f} | "
            f"{sim['other_sku_same_category_caught'][t]:.3f} | "
            f"{sim['other_category_caught'][t]:.3f} |"
        )
    lines += ["", "| min_confidence | decided | accuracy of decided |", "|---|---|---|"]
    for t, row in res["confidence"].items():
        lines.append(f"| {t} | {row['decided']:.3f} | {row['accuracy']} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="a `returnlens synth` folder")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    res = check(args.model, args.data, args.split, args.limit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    args.out.with_suffix(".md").write_text(markdown(res) + "\n")
    print(markdown(res))


if __name__ == "__main__":
    main()
