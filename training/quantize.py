"""Static int8 quantisation of an exported model, with its accuracy and speed change.

ONNX Runtime's ``quantize_static`` in QDQ format, per-channel weights, activations
calibrated on real preprocessed validation photos (the same decode and preprocess as
serving). Only Conv/Gemm/MatMul are quantised: the softmax, sigmoid and L2
normalisation at the end stay in float, so probabilities keep their resolution. The
int8 file carries the fp32 card with ``-int8`` appended to the version (its scores
differ, so recorded decisions must name it apart), ``recipe.quantized = true`` and its
own measured metrics.

The unfamiliarity score's own nodes stay in float, but they read the quantised
backbone's pooled features, so the score drifts. The int8 card therefore gets its own
threshold, re-fitted on the int8 model's validation scores for the fp32 card's target
false-alarm rate, and records the drift (how far the scores moved, how many verdicts
flipped): the fp32 threshold applied to int8 scores would silently change the rate.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from training.evaluate import compute_metrics, headline, load_rgb, predict_records
from vision.card import ModelCard, UnfamiliaritySpec
from vision.errors import ModelError
from vision.fsio import atomic_path
from vision.manifest import Manifest, ManifestRecord
from vision.model import INPUT_NAME, OnnxModel
from vision.preprocess import PreprocessSpec, preprocess_batch
from vision.registry import write_card
from vision.unfamiliarity import group_threshold, photo_kinds
from vision.unfamiliarity_graph import PREFIX as SCORE_PREFIX

CALIBRATION_IMAGES = 128
QUANTIZED_OPS = ["Conv", "Gemm", "MatMul"]


class _Reader(CalibrationDataReader):
    """Feeds preprocessed validation photos to the calibrator, a few at a time."""

    def __init__(
        self, records: list[ManifestRecord], spec: PreprocessSpec, batch_size: int = 8
    ) -> None:
        self.records, self.spec, self.batch_size = records, spec, batch_size
        self.pos = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.pos >= len(self.records):
            return None
        chunk = self.records[self.pos : self.pos + self.batch_size]
        self.pos += len(chunk)
        images = [load_rgb(r.image, self.spec.input_size) for r in chunk]
        return {INPUT_NAME: preprocess_batch(images, self.spec)}

    def rewind(self) -> None:
        self.pos = 0


@dataclass(frozen=True)
class QuantizationReport:
    path: Path
    split: str
    accuracy_fp32: float | None
    accuracy_int8: float | None
    metrics_int8: dict[str, Any]
    # {"fp32"|"int8": {"1": ms/img, "8": ms/img}}, single-threaded CPU, median of repeats
    latency_ms: dict[str, dict[str, float]]
    size_bytes: dict[str, int]

    @property
    def accuracy_change(self) -> float | None:
        if self.accuracy_fp32 is None or self.accuracy_int8 is None:
            return None
        return round(self.accuracy_int8 - self.accuracy_fp32, 6)

    def speedup(self, batch: int) -> float:
        return self.latency_ms["fp32"][str(batch)] / self.latency_ms["int8"][str(batch)]


def int8_path_for(path: Path) -> Path:
    """``model.onnx`` -> ``model.int8.onnx``."""
    return path.with_name(f"{path.stem}.int8{path.suffix}")


def measure_latency(
    model: OnnxModel, batch_sizes: tuple[int, ...] = (1, 8), repeats: int = 10
) -> dict[str, float]:
    """Median milliseconds per image on random input, after a warm-up run.

    A report figure, not a test assertion: the numbers depend on the machine and load.
    """
    size = model.card.preprocess.input_size
    rng = np.random.default_rng(0)
    result = {}
    for n in batch_sizes:
        batch = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
        model.predict(batch)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.predict(batch)
            times.append(time.perf_counter() - start)
        result[str(n)] = round(1000.0 * statistics.median(times) / n, 3)
    return result


def quantize_model(
    fp32_path: Path,
    manifest: Manifest,
    *,
    out_path: Path | None = None,
    calibration_images: int = CALIBRATION_IMAGES,
    progress: bool = True,
    latency_repeats: int = 10,
) -> QuantizationReport:
    """Write ``<name>.int8.onnx`` beside ``fp32_path``; report accuracy and speed change."""
    fp32 = OnnxModel(fp32_path)
    out = out_path or int8_path_for(Path(fp32_path))
    calib = [*manifest.split("val"), *manifest.split("train")][:calibration_images]
    if not calib:
        raise ModelError(
            "static quantisation needs calibration photos in the val or train split",
            code="too_few_photos",
        )
    with atomic_path(out) as tmp:
        with tempfile.TemporaryDirectory() as work:
            prepared = Path(work) / "prepared.onnx"
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(tmp),
                _Reader(calib, fp32.card.preprocess),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=QUANTIZED_OPS,
                nodes_to_exclude=_score_nodes(prepared),
            )
        split = "test" if manifest.split("test") else "val"
        records = manifest.split(split)
        card = _int8_card(fp32.card, len(calib))
        write_card(tmp, card)
        if card.unfamiliarity is not None:
            card = replace(card, unfamiliarity=_refit_unfamiliarity(fp32, tmp, manifest, card))
            write_card(tmp, card)
        int8 = OnnxModel(tmp)
        m8 = headline(
            compute_metrics(
                predict_records(int8, records, progress=progress, desc=f"int8 {split}"),
                records,
                card,
                split=split,
            )
        )
        write_card(tmp, replace(card, metrics=m8))
    # One thread each: per-image figures that do not depend on how busy the other cores are.
    fp32_1t, int8_1t = OnnxModel(fp32_path, intra_op_threads=1), OnnxModel(out, intra_op_threads=1)
    return QuantizationReport(
        path=out,
        split=split,
        accuracy_fp32=fp32.card.metrics.get("accuracy"),
        accuracy_int8=m8.get("accuracy"),
        metrics_int8=m8,
        latency_ms={
            "fp32": measure_latency(fp32_1t, repeats=latency_repeats),
            "int8": measure_latency(int8_1t, repeats=latency_repeats),
        },
        size_bytes={"fp32": Path(fp32_path).stat().st_size, "int8": out.stat().st_size},
    )


def _score_nodes(model_path: Path) -> list[str]:
    """The unfamiliarity score's nodes (kept in float: its projections are MatMuls)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.name.startswith(SCORE_PREFIX)]


def _refit_unfamiliarity(
    fp32: OnnxModel, int8_path: Path, manifest: Manifest, card: ModelCard
) -> UnfamiliaritySpec:
    """The int8 model's own threshold, at the fp32 card's target rate, and the drift."""
    spec = card.unfamiliarity
    assert spec is not None
    val = manifest.split("val")
    if not val:
        raise ModelError(
            "re-fitting the unfamiliarity threshold for int8 needs a val split",
            code="too_few_photos",
        )
    int8 = OnnxModel(int8_path)
    s32 = predict_records(fp32, val, progress=False).unfamiliarity
    s8 = predict_records(int8, val, progress=False).unfamiliarity
    assert s32 is not None and s8 is not None
    target = float(spec.fitted_on.get("target_rate", spec.false_alarm_rate))
    # per kind of val photo, as the fp32 threshold was fitted (vision.unfamiliarity)
    threshold, rate = group_threshold([s8[k] for k in photo_kinds(val)], s8, target)
    flags32, flags8 = s32 > spec.threshold, s8 > threshold
    drift = {
        "fp32_threshold": spec.threshold,
        "fp32_threshold_rate_on_int8": round(float(np.mean(s8 > spec.threshold)), 6),
        "median_abs_score_change": round(float(np.median(np.abs(s8 - s32))), 6),
        "verdict_flips": int(np.sum(flags32 != flags8)),
        "val_photos": len(val),
    }
    return replace(
        spec,
        threshold=threshold,
        false_alarm_rate=round(rate, 6),
        fitted_on={**spec.fitted_on, "int8_refit": drift},
    )


def _int8_card(card: ModelCard, calibration_images: int) -> ModelCard:
    recipe = {
        **card.recipe,
        "quantized": True,
        "quantization": {
            "method": "onnxruntime quantize_static",
            "format": "QDQ",
            "weights": "int8 per-channel",
            "activations": "uint8",
            "ops": QUANTIZED_OPS,
            "calibration_images": calibration_images,
            "fp32_version": card.model_version,
        },
    }
    return replace(card, model_version=f"{card.model_version}-int8", recipe=recipe)
