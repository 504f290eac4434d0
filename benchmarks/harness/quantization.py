"""fp32 vs int8: latency and accuracy change of the static int8 model.

The int8 file is the one shipped beside the fp32 model (``<name>.int8.onnx``) when there
is one; otherwise ``training.quantize.quantize_model`` makes it (QDQ, per-channel,
calibrated on the benchmark's synthetic photos). Both are then scored on the same test
photos: grade accuracy of each, top-1 agreement and the largest probability change.
Latency is batch 1 and 4 with the service's thread count, plus quantize_model's own
single-thread figures when it ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness.common import log
from benchmarks.harness.runtime import _batch, time_calls


def _accuracy(probs: np.ndarray, records: Any, labels: tuple[str, ...]) -> float | None:
    idx = [
        (i, labels.index(r.grade))
        for i, r in enumerate(records)
        if r.grade is not None and r.grade in labels
    ]
    if not idx:
        return None
    rows, truth = zip(*idx, strict=True)
    return round(float(np.mean(probs[list(rows)].argmax(axis=1) == np.array(truth))), 4)


def _int8_model(
    fp32: Path, manifest: Any, out_dir: Path, calibration: int
) -> tuple[Path, str, Any]:
    """(int8 path, where it came from, quantize_model's report or None)."""
    from training.quantize import int8_path_for, quantize_model

    shipped = int8_path_for(fp32)
    if shipped.is_file() and not shipped.resolve().is_relative_to(out_dir.parent.resolve()):
        return shipped, "shipped beside the fp32 model", None
    out = out_dir / f"{shipped.stem}-cal{calibration}.onnx"
    if out.is_file() and out.stat().st_mtime >= fp32.stat().st_mtime:
        return out, "quantised by an earlier harness run (cached)", None
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"  quantising {fp32.name} (calibration on {calibration} photos)")
    report = quantize_model(
        fp32,
        manifest,
        out_path=out,
        calibration_images=calibration,
        progress=False,
        latency_repeats=5,
    )
    return out, "quantised now (training.quantize)", report


def fp32_vs_int8(
    fp32_path: Path,
    manifest_path: Path,
    out_dir: Path,
    *,
    threads: int,
    calibration: int,
    repeats: int,
) -> dict[str, Any]:
    from training.evaluate import predict_records
    from vision.manifest import load_manifest
    from vision.model import OnnxModel

    manifest = load_manifest(manifest_path)
    int8_path, source, report = _int8_model(fp32_path, manifest, out_dir, calibration)
    fp32, int8 = (OnnxModel(p, intra_op_threads=threads) for p in (fp32_path, int8_path))
    records = manifest.split("test") or manifest.split("val")
    a = predict_records(fp32, records, progress=False)
    b = predict_records(int8, records, progress=False)
    labels = fp32.card.grade_labels
    size = fp32.card.preprocess.input_size
    latency: dict[str, Any] = {}
    for n in (1, 4):
        x = _batch(size, n)
        f_ms = time_calls(lambda x=x: fp32.predict(x), repeats)
        i_ms = time_calls(lambda x=x: int8.predict(x), repeats)
        latency[str(n)] = {
            "fp32_ms": round(f_ms, 2),
            "int8_ms": round(i_ms, 2),
            "speedup": round(f_ms / i_ms, 2),
        }
    acc32 = _accuracy(a.grade_probs, records, labels)
    acc8 = _accuracy(b.grade_probs, records, labels)
    return {
        "int8_path": str(int8_path),
        "int8_source": source,
        "threads": threads,
        "test_photos": len(records),
        "latency": latency,
        "accuracy_fp32": acc32,
        "accuracy_int8": acc8,
        "accuracy_change": None if acc32 is None or acc8 is None else round(acc8 - acc32, 4),
        "top1_agreement": round(
            float(np.mean(a.grade_probs.argmax(1) == b.grade_probs.argmax(1))), 4
        ),
        "max_abs_grade_prob_change": round(float(np.abs(a.grade_probs - b.grade_probs).max()), 4),
        "size_bytes": {"fp32": fp32_path.stat().st_size, "int8": int8_path.stat().st_size},
        "quantize_report_latency_1thread_ms": None if report is None else report.latency_ms,
    }
