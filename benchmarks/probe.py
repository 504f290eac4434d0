"""Linear-probe baseline: logistic regression on frozen ImageNet Lite0 features.

    python benchmarks/probe.py --data datasets/generated/car-damage/manifest.jsonl \
        --out benchmarks/results/probe_car-damage.json

The yardstick the fine-tuned recipe must beat on real photos (issue 4): the photos are
decoded and letterboxed exactly as training and serving do (``vision``), the frozen
backbone's globally pooled features are standardised, and scikit-learn's
``LogisticRegression`` is fitted on train with C chosen on val; the test accuracy,
mean absolute grade error and per-split sizes are written as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from training.backbones import build_backbone
from training.evaluate import load_rgb
from vision.manifest import ManifestRecord, load_manifest
from vision.preprocess import PreprocessSpec, preprocess_batch

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


@torch.no_grad()
def features(records: tuple[ManifestRecord, ...], size: int, batch: int = 64) -> np.ndarray:
    net, spec = build_backbone("efficientnet_lite0", "imagenet")
    net.eval()
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    pre = PreprocessSpec(input_size=size)
    out = []
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        x = preprocess_batch([load_rgb(r.image, size) for r in chunk], pre)
        t = torch.from_numpy(x).permute(0, 3, 1, 2).float()
        out.append(net((t - mean) / std).mean(dim=(2, 3)).numpy())
        print(f"  {min(start + batch, len(records))}/{len(records)}", flush=True)
    return np.concatenate(out)


def probe(manifest_path: Path, size: int) -> dict[str, Any]:
    manifest = load_manifest(manifest_path)
    grades = manifest.header.grade_labels
    split = {s: manifest.split(s) for s in ("train", "val", "test")}
    x = {s: features(r, size) for s, r in split.items()}
    y = {s: np.array([grades.index(str(r.grade)) for r in recs]) for s, recs in split.items()}
    scaler = StandardScaler().fit(x["train"])
    z = {s: scaler.transform(v) for s, v in x.items()}
    fits = {c: LogisticRegression(C=c, max_iter=3000).fit(z["train"], y["train"]) for c in C_GRID}
    val_acc = {c: float((m.predict(z["val"]) == y["val"]).mean()) for c, m in fits.items()}
    best = max(val_acc, key=lambda c: val_acc[c])
    pred = fits[best].predict(z["test"])
    return {
        "manifest": str(manifest_path),
        "source": manifest.header.source,
        "backbone": "efficientnet_lite0 (ImageNet, frozen)",
        "input_size": size,
        "sizes": {s: len(r) for s, r in split.items()},
        "C": best,
        "val_accuracy_by_C": {str(c): round(a, 4) for c, a in val_acc.items()},
        "test_accuracy": round(float((pred == y["test"]).mean()), 4),
        "test_mean_abs_grade_error": round(float(np.abs(pred - y["test"]).mean()), 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="manifest (JSONL)")
    p.add_argument("--size", type=int, default=224, help="letterboxed input size")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    result = probe(args.data, args.size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
