"""Learning curve of ``returnlens adapt`` on real photos, beside the probe and a fine-tune.

    python -m benchmarks.learning_curve            # adapt + probe, every N
    python -m benchmarks.learning_curve --finetune-sizes 100,500

For N = 25, 50, 100, 200, 500 and all training labels of
``../shared/datasets/car-damage-severity`` (grades mapped minor -> C_good, moderate ->
D_fair, severe -> E_damaged, as ``make real-data`` imports them):

* **adapt**: ``training.adapt.adapt_model`` from the shipped model, no feature cache (each
  run pays its own backbone pass: the time is what a deployment waits), evaluated on the
  test split through ``vision`` on the written file;
* **probe**: logistic regression on frozen ImageNet EfficientNet-Lite0 features
  (``benchmarks/probe.py``), C chosen on the same validation photos;
* **fine-tune** (``--finetune-sizes``): ``returnlens train`` with the real-photos recipe
  as ``benchmarks/results/real-photos/car-damage-rp2`` ran it (192 px, half the backbone
  trainable, weight average 0.99, mirror-averaged export) from ImageNet weights, for 14
  epochs or at least ``FT_MIN_STEPS`` optimiser steps, exported and evaluated the same way.

Each N draws its training photos stratified by grade (seeds 0..draws-1; one draw when
N is all) and a validation subset of N/4 photos (at least ``MIN_VAL``), as a deployment
with N labels would hold out; the test split (220 photos from another source) is always
whole. Results: ``benchmarks/results/learning_curve.json``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

SHARED = Path("../shared/datasets/car-damage-severity")
MANIFEST = Path("datasets/generated/car-damage/manifest.jsonl")
GRADE_MAP = {"minor": "C_good", "moderate": "D_fair", "severe": "E_damaged"}
OUT = Path("benchmarks/results/learning_curve")
MIN_VAL = 10
FT_MIN_STEPS = 200
FT_EPOCHS = 14


def ensure_manifest(path: Path) -> Any:
    from vision.manifest import import_folder, load_manifest

    if not path.is_file():
        if not SHARED.is_dir():
            sys.exit(f"{SHARED} is missing: the learning curve needs the real car photos")
        import_folder(SHARED, path, grade_map=GRADE_MAP, category="car")
    return load_manifest(path)


def stratified(records: Sequence[Any], n: int | None, seed: int) -> list[Any]:
    """``n`` records with each grade's share kept (all when n is None or too large)."""
    if n is None or n >= len(records):
        return list(records)
    rng = np.random.default_rng(seed)
    grades = sorted({r.grade for r in records})
    out: list[Any] = []
    for k, g in enumerate(grades):
        mine = [r for r in records if r.grade == g]
        share = round(n * len(mine) / len(records)) if k < len(grades) - 1 else n - len(out)
        out += [mine[i] for i in rng.permutation(len(mine))[: max(share, 1)]]
    return out


def subset(manifest: Any, n: int | None, seed: int, folder: Path) -> Path:
    from vision.manifest import write_manifest

    train = stratified(manifest.split("train"), n, seed)
    val_n = None if n is None else max(MIN_VAL, n // 4)
    val = stratified(manifest.split("val"), val_n, seed)
    path = folder / f"n{n or 'all'}-s{seed}.jsonl"
    write_manifest(path, manifest.header, [*train, *val, *manifest.split("test")])
    return path


def run_adapt(model: Path, manifest_path: Path, folder: Path) -> dict[str, Any]:
    from training.adapt import AdaptOptions, adapt_model
    from vision.manifest import load_manifest

    t0 = time.perf_counter()
    rep = adapt_model(
        model,
        load_manifest(manifest_path),
        folder / f"{manifest_path.stem}.onnx",
        AdaptOptions(cache_dir=None, drift_reference=False, progress=False),
    )
    m = rep.card.metrics
    return {
        "accuracy": m["accuracy"],
        "mae": m["mean_abs_grade_error"],
        "ece": m["ece"],
        "seconds": round(time.perf_counter() - t0, 1),
        "temperature": rep.card.temperature,
        "anchor": rep.adapt["grade_head"]["anchor"],
        "l2": rep.adapt["grade_head"]["l2"],
    }


class Probe:
    """Frozen ImageNet Lite0 features of every photo, computed once."""

    def __init__(self, manifest: Any) -> None:
        from benchmarks.probe import features

        t0 = time.perf_counter()
        recs = [*manifest.split("train"), *manifest.split("val"), *manifest.split("test")]
        feats = features(tuple(recs), 224)
        self.index = {r.id: i for i, r in enumerate(recs)}
        self.x = feats
        self.grades = list(manifest.header.grade_labels)
        self.feature_seconds = time.perf_counter() - t0

    def run(self, manifest_path: Path) -> dict[str, Any]:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        from benchmarks.probe import C_GRID
        from training.metrics import expected_calibration_error
        from vision.manifest import load_manifest

        t0 = time.perf_counter()
        m = load_manifest(manifest_path)
        x = {s: self.x[[self.index[r.id] for r in m.split(s)]] for s in ("train", "val", "test")}
        y = {s: np.array([self.grades.index(r.grade) for r in m.split(s)]) for s in x}
        scaler = StandardScaler().fit(x["train"])
        z = {s: scaler.transform(v) for s, v in x.items()}
        fits = {
            c: LogisticRegression(C=c, max_iter=3000).fit(z["train"], y["train"]) for c in C_GRID
        }
        best = max(C_GRID, key=lambda c: (fits[c].predict(z["val"]) == y["val"]).mean())
        probs = fits[best].predict_proba(z["test"])
        pred = fits[best].classes_[probs.argmax(axis=1)]
        full = np.zeros((len(pred), len(self.grades)))
        full[:, fits[best].classes_] = probs
        return {
            "accuracy": round(float((pred == y["test"]).mean()), 6),
            "mae": round(float(np.abs(pred - y["test"]).mean()), 6),
            "ece": round(expected_calibration_error(full, y["test"]), 6),
            "seconds": round(time.perf_counter() - t0, 2),
            "C": best,
        }


def run_finetune(manifest_path: Path, n: int, folder: Path) -> dict[str, Any]:
    """``returnlens train`` with the real-photos recipe, then test metrics of its export."""
    from training.evaluate import compute_metrics, predict_records
    from vision.manifest import load_manifest
    from vision.model import OnnxModel

    epochs = max(FT_EPOCHS, math.ceil(FT_MIN_STEPS * 32 / n))
    out = folder / f"ft-{manifest_path.stem}"
    cmd = [
        sys.executable, "-m", "returnlens", "train",
        "--config", "training/configs/real-photos.yaml",
        "--manifest", str(manifest_path), "--out", str(out),
        "--image-size", "192", "--epochs", str(epochs), "--aug-strength", "0.5",
        "--set", "backbone_trainable=0.5", "--set", "ema_decay=0.99",
        "--model-version", f"ft-{manifest_path.stem}",
    ]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    model = OnnxModel(out / "model.onnx")
    test = load_manifest(manifest_path).split("test")
    m = compute_metrics(predict_records(model, test, progress=False), test, model.card)
    return {
        "accuracy": m["grade"]["accuracy"],
        "mae": m["grade"]["mean_abs_error"],
        "ece": m["calibration"]["ece_after"],
        "seconds": round(seconds, 1),
        "epochs": epochs,
    }


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread over draws per (method, N)."""
    out = []
    for key in sorted({(r["method"], r["n"]) for r in rows}, key=lambda k: (k[0], k[1])):
        mine = [r for r in rows if (r["method"], r["n"]) == key]
        agg: dict[str, Any] = {"method": key[0], "n": key[1], "draws": len(mine)}
        for metric in ("accuracy", "mae", "ece", "seconds"):
            vals = np.array([r[metric] for r in mine], dtype=float)
            agg[metric] = round(float(vals.mean()), 4)
            agg[f"{metric}_sd"] = round(float(vals.std()), 4)
        out.append(agg)
    return out


def plot(summary: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    styles = {"adapt": ("o-", "adapt (shipped model)"), "probe": ("s--", "probe (ImageNet)"),
              "fine-tune": ("^:", "full fine-tune")}  # fmt: skip
    for method, (style, label) in styles.items():
        mine = sorted((s for s in summary if s["method"] == method), key=lambda s: s["n"])
        if not mine:
            continue
        n = [s["n"] for s in mine]
        for ax, metric in zip(axes, ("accuracy", "mae", "ece"), strict=True):
            ax.errorbar(n, [s[metric] for s in mine], yerr=[s[f"{metric}_sd"] for s in mine],
                        fmt=style, capsize=3, label=label)  # fmt: skip
    for ax, title in zip(axes, ("test accuracy", "test MAE (grades)", "test ECE"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("labelled training photos (N)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("car-damage-severity: learning curve (mean ± sd over draws)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Learning curve: `returnlens adapt` on car-damage-severity",
        "",
        f"Measured {result['date']} on {result['machine']} by `{result['command']}`.",
        "Test split: 220 photos from another source than train (whole, every run).",
        "",
        "| N | method | draws | test accuracy | MAE | ECE | seconds per run |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in sorted(result["summary"], key=lambda s: (s["n"], s["method"])):
        sd = f" ± {s['accuracy_sd']:.1%}" if s["draws"] > 1 else ""
        lines.append(
            f"| {s['n']} | {s['method']} | {s['draws']} | {s['accuracy']:.1%}{sd} | "
            f"{s['mae']:.3f} | {s['ece']:.3f} | {s['seconds']:.1f} |"
        )
    lines += [
        "",
        f"The probe's seconds are the fit alone; its ImageNet features took "
        f"{result['probe_feature_seconds']:.0f} s once for all {result['photos']} photos.",
        "Adapt's seconds include its own backbone pass over train, val and test (no cache).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=Path("serving/models/returnlens-default.onnx"))
    ap.add_argument("--data", type=Path, default=MANIFEST)
    ap.add_argument("--sizes", default="25,50,100,200,500,all")
    ap.add_argument("--draws", type=int, default=3, help="draws for N <= 200")
    ap.add_argument("--finetune-sizes", default="", help="N values to fine-tune, e.g. 100,500")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    manifest = ensure_manifest(args.data)
    n_all = len(manifest.split("train"))
    sizes = [None if s == "all" else int(s) for s in args.sizes.split(",") if s]
    ft = {None if s == "all" else int(s) for s in args.finetune_sizes.split(",") if s}
    probe = Probe(manifest)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="returnlens-lc-") as tmp:
        for n in sizes:
            draws = args.draws if n is not None and n <= 200 else 1
            for seed in range(draws):
                path = subset(manifest, n, seed, Path(tmp))
                base = {"n": n or n_all, "seed": seed}
                rows.append({"method": "adapt", **base, **run_adapt(args.model, path, Path(tmp))})
                rows.append({"method": "probe", **base, **probe.run(path)})
                if n in ft and seed == 0:
                    rows.append(
                        {"method": "fine-tune", **base, **run_finetune(path, n or n_all, Path(tmp))}
                    )
                print(
                    json.dumps(rows[-1] if rows[-1]["method"] != "probe" else rows[-2]), flush=True
                )
    summary = summarise(rows)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores",
        "command": "python -m benchmarks.learning_curve " + " ".join(argv or sys.argv[1:]),
        "model": str(args.model),
        "photos": sum(len(manifest.split(s)) for s in ("train", "val", "test")),
        "probe_feature_seconds": round(probe.feature_seconds, 1),
        "rows": rows,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    args.out.with_suffix(".md").write_text(markdown(result))
    plot(summary, args.out.with_suffix(".png"))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
