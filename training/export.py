"""Calibrate a checkpoint, export it to ONNX with its model card, and prove parity.

The order is the guarantee: calibrate on the validation split, export the
graph to a temporary file, evaluate that file through ``vision`` on the test split,
write the card into it, run ``onnx.checker`` and then the parity check (the same
decoded, preprocessed photos through torch and ONNX Runtime). Only a file that passes
everything is renamed to the output path; a failed export leaves nothing behind.

Calibration keeps the better of T = 1 and the fitted temperature by validation ECE
(``training.calibrate.choose_temperature``), and a validation split under
``MIN_CALIBRATION_PHOTOS`` graded photos keeps T = 1. Neither refuses the export: the
graph and its test metrics are unaffected by the choice, the card records it
(``card.metrics["calibration"]``) and one sentence goes to the log (a warning, so it
reaches stderr, whenever the model ships unscaled).
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import torch
from torch import Tensor, nn
from tqdm import tqdm

from training.calibrate import CalibrationChoice, choose_temperature, suggest_thresholds
from training.evaluate import compute_metrics, headline, load_rgb, predict_records
from training.metrics import nll, softmax
from training.model import CheckpointMeta, FlipAveraged, GraderNet, load_checkpoint
from vision.card import ModelCard
from vision.drift_fit import add_drift_reference
from vision.errors import DataError, ReturnLensError
from vision.fsio import atomic_path
from vision.manifest import Manifest, ManifestRecord
from vision.model import INPUT_NAME, OUTPUT_NAMES, OnnxModel
from vision.preprocess import PreprocessSpec, preprocess_batch
from vision.registry import write_card
from vision.unfamiliarity import add_unfamiliarity

OPSET = 17
PARITY_TOLERANCE = 1e-4
MIN_PARITY_IMAGES = 32
SYNTHETIC_NOTE = (
    "Trained on synthetic images; deployments should retrain on their own labelled returns."
)
Exporter = Literal["legacy", "dynamo"]
log = logging.getLogger(__name__)


class ExportError(ReturnLensError):
    """The exported graph is not a faithful copy of the checkpoint."""

    code = "parity_failed"


class ExportWrapper(nn.Module):
    """GraderNet plus the calibration: the exact function the ONNX file computes."""

    def __init__(self, net: GraderNet | FlipAveraged, temperature: float) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out = self.net(image)
        grade_probs = torch.softmax(out.grade_logits / self.temperature, dim=1)
        return grade_probs, torch.sigmoid(out.damage_logits), out.embedding, out.damage_cam


def export_graph(
    wrapper: nn.Module,
    path: Path,
    input_size: int,
    *,
    opset: int = OPSET,
    exporter: Exporter = "legacy",
) -> None:
    """Write the graph: input ``image`` uint8 [N,S,S,3] with a dynamic batch dimension.

    The TorchScript exporter ("legacy") is the default: it gives a compact, checker-clean
    graph in about a second; the dynamo exporter gives the same numbers but is slower.
    """
    wrapper.eval()
    example = torch.zeros((2, input_size, input_size, 3), dtype=torch.uint8)
    names = [INPUT_NAME, *OUTPUT_NAMES]
    with warnings.catch_warnings():
        # The legacy exporter's deprecation notice, and tracer notes about shapes baked
        # into the graph (H and W are fixed by the contract; the parity check runs batch
        # sizes 1, 3 and N, so a batch-dependent trace cannot pass unnoticed).
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=4096)
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                opset_version=max(opset, 18),
                dynamo=True,
                external_data=False,
                verbose=False,
                dynamic_shapes=({0: batch},),
            )
        else:
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
                dynamic_axes={n: {0: "batch"} for n in names},
            )


def check_graph(path: Path) -> None:
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # onnx.checker.ValidationError and shape-inference errors
        raise ExportError(
            f"onnx.checker rejects the exported graph: {exc}", code="invalid_graph"
        ) from exc


@torch.no_grad()
def torch_outputs(
    module: nn.Module, batch: np.ndarray, *, batch_size: int = 32
) -> list[np.ndarray]:
    """Run a uint8 NHWC batch through a module in eval mode; outputs as float32 arrays."""
    module.eval()
    parts: list[list[np.ndarray]] = []
    for start in range(0, len(batch), batch_size):
        out = module(torch.from_numpy(np.ascontiguousarray(batch[start : start + batch_size])))
        parts.append([t.float().cpu().numpy() for t in out])
    return [np.concatenate(col) for col in zip(*parts, strict=True)]


@dataclass(frozen=True)
class ParityReport:
    images: int
    max_abs_diff: dict[str, float]  # per output name
    tolerance: float

    @property
    def prob_max_diff(self) -> float:
        return max(self.max_abs_diff["grade_probs"], self.max_abs_diff["damage_probs"])


def parity_check(
    wrapper: nn.Module, onnx_path: Path, batch: np.ndarray, *, tolerance: float = PARITY_TOLERANCE
) -> ParityReport:
    """Same uint8 batch through torch and ONNX Runtime; ExportError beyond ``tolerance``.

    ONNX Runtime sees the batch in chunks of varying size (1, 3, then the rest), which
    also proves the dynamic batch dimension.
    """
    expected = torch_outputs(wrapper, batch)
    model = OnnxModel(onnx_path)
    cuts = [0, 1, 4, len(batch)]
    got = [model.predict(batch[a:b]) for a, b in itertools.pairwise(cuts) if b > a]
    diffs = {}
    for k, name in enumerate(OUTPUT_NAMES):
        onnx_out = np.concatenate([getattr(g, name) for g in got])
        if onnx_out.shape != expected[k].shape:
            raise ExportError(
                f"ONNX output {name} has shape {onnx_out.shape}, torch {expected[k].shape}"
            )
        delta = np.abs(onnx_out.astype(np.float64) - expected[k])
        # A label set without damage labels exports [N, 0] damage outputs: nothing differs.
        diffs[name] = float(delta.max()) if delta.size else 0.0
    report = ParityReport(len(batch), diffs, tolerance)
    bad = not np.isfinite(report.prob_max_diff) or report.prob_max_diff > tolerance
    if bad:
        raise ExportError(
            f"parity check failed: ONNX Runtime and torch probabilities differ by up to "
            f"{report.prob_max_diff:.3g} on {len(batch)} photos (limit {tolerance:g}); the "
            "model was not written",
            details={"max_abs_diff": diffs},
        )
    return report


def preprocessed(records: Sequence[ManifestRecord], spec: PreprocessSpec) -> np.ndarray:
    """Decode (as serving does) and preprocess records into one uint8 NHWC batch."""
    return preprocess_batch([load_rgb(r.image, spec.input_size) for r in records], spec)


def parity_records(manifest: Manifest, n: int = MIN_PARITY_IMAGES) -> list[ManifestRecord]:
    """n photos for the parity check: val and test first, topped up from train."""
    pool = [*manifest.split("val"), *manifest.split("test"), *manifest.split("train")]
    if len(pool) < n:
        raise DataError(
            f"the parity check needs at least {n} photos; {manifest.path} has {len(pool)}",
            code="too_few_photos",
        )
    return pool[:n]


@dataclass(frozen=True)
class ValidationPass:
    logits: np.ndarray  # [N,G] raw grade logits
    embedding: np.ndarray  # [N,E]
    labels: np.ndarray  # [N] grade index, -1 = unlabelled
    skus: list[str]


def validation_pass(
    net: GraderNet | FlipAveraged,
    records: Sequence[ManifestRecord],
    meta: CheckpointMeta,
    *,
    batch_size: int = 32,
    progress: bool = True,
) -> ValidationPass:
    """Raw logits and embeddings on the validation split (streamed in batches)."""
    g_index = {g: i for i, g in enumerate(meta.grade_labels)}
    logits, emb = [], []
    with tqdm(total=len(records), desc="calibrate val", unit="img", disable=not progress) as bar:
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            with torch.no_grad():
                out = net(torch.from_numpy(preprocessed(chunk, meta.preprocess)))
            logits.append(out.grade_logits.float().numpy())
            emb.append(out.embedding.float().numpy())
            bar.update(len(chunk))
    z = np.concatenate(logits).astype(np.float64)
    if not np.isfinite(z).all():
        raise ExportError(
            "the checkpoint produces NaN or infinite logits on the validation "
            "photos; it cannot be calibrated",
            code="non_finite",
        )
    labels = np.array([g_index[r.grade] if r.grade is not None else -1 for r in records])
    return ValidationPass(z, np.concatenate(emb), labels, [r.sku for r in records])


@dataclass(frozen=True)
class ExportReport:
    path: Path
    temperature: float
    parity: ParityReport
    metrics: dict[str, Any]
    thresholds: dict[str, float]
    card: ModelCard
    quantization: Any = None  # training.quantize.QuantizationReport when requested
    notes: list[str] = field(default_factory=list)

    @property
    def parity_max_diff(self) -> float:
        return self.parity.prob_max_diff


def check_checkpoint_labels(meta: CheckpointMeta, manifest: Manifest) -> None:
    head = manifest.header
    if tuple(head.grade_labels) != tuple(meta.grade_labels):
        raise DataError(
            f"the manifest's grade labels {list(head.grade_labels)} do not match "
            f"the checkpoint's {list(meta.grade_labels)}",
            code="label_mismatch",
        )
    extra = [d for d in head.damage_labels if d not in meta.damage_labels]
    if extra:
        raise DataError(
            f"the manifest's damage labels {extra} are not among the "
            f"checkpoint's {list(meta.damage_labels)}",
            code="label_mismatch",
        )


def default_version(backbone: str) -> str:
    return f"{backbone}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


@dataclass(frozen=True)
class ValidationFit:
    """What export takes from the validation split."""

    calibration: CalibrationChoice  # the kept temperature and why
    thresholds: dict[str, float]  # the card's suggested operating points
    targets: dict[str, dict[str, Any]]  # what each suggestion was fitted for
    recipe_info: dict[str, Any]  # recipe["export"]["calibration"]

    @property
    def temperature(self) -> float:
        return self.calibration.temperature

    def card_metrics(self) -> dict[str, Any]:
        return {"calibration": self.calibration.card_dict(), "thresholds": self.targets}


def _fit(
    net: GraderNet | FlipAveraged,
    manifest: Manifest,
    meta: CheckpointMeta,
    progress: bool,
    approve_precision: float,
) -> ValidationFit:
    """Kept temperature, suggested thresholds and validation calibration figures.

    The thresholds are fitted on the probabilities the model will really output (with
    the kept temperature), so a suggestion always matches the shipped confidences.
    """
    val = manifest.split("val")
    if not val:
        raise DataError(f"{manifest.path} has no val split to calibrate on", code="empty_split")
    vp = validation_pass(net, val, meta, progress=progress)
    lab = vp.labels >= 0
    if not lab.any():
        raise DataError("the val split has no graded photos to calibrate on", code="empty_split")
    z, y = vp.logits[lab], vp.labels[lab]
    choice = choose_temperature(z, y)
    cal = softmax(z / choice.temperature)
    thr = suggest_thresholds(
        cal,
        y,
        vp.embedding[lab],
        [s for s, k in zip(vp.skus, lab, strict=True) if k],
        approve_precision=approve_precision,
    )
    val_info = {
        "val_nll_before": round(nll(softmax(z), y), 6),
        "val_nll_after": round(nll(cal, y), 6),
        "val_auto_approve_coverage": thr.auto_approve_coverage,
        "approve_precision_target": approve_precision,
    }
    return ValidationFit(choice, thr.as_card_dict(), thr.targets(), val_info)


def calibrate_and_export(
    checkpoint: Path,
    manifest: Manifest,
    out_path: Path,
    *,
    model_version: str | None = None,
    quantize: bool = False,
    progress: bool = True,
    approve_precision: float = 0.98,
    notes: str | None = None,
    exporter: Exporter = "legacy",
    tolerance: float = PARITY_TOLERANCE,
    tta_flip: bool | None = None,
) -> ExportReport:
    """Checkpoint -> calibrated, parity-checked ONNX file with its model card.

    ``tta_flip`` (default: the recipe's ``tta_flip``) exports the mirror-averaged model;
    it is also what gets calibrated, evaluated and parity-checked.
    """
    base, meta = load_checkpoint(Path(checkpoint))
    if tta_flip is None:
        tta_flip = bool(meta.config.get("tta_flip", False))
    net: GraderNet | FlipAveraged = FlipAveraged(base).eval() if tta_flip else base.eval()
    check_checkpoint_labels(meta, manifest)
    out_path = Path(out_path)
    parity_recs = parity_records(manifest)  # fail fast, before any inference
    fit = _fit(net, manifest, meta, progress, approve_precision)
    (log.info if fit.calibration.kept == "scaled" else log.warning)(fit.calibration.sentence)
    temperature, thresholds, val_info = fit.temperature, fit.thresholds, fit.recipe_info
    wrapper = ExportWrapper(net, temperature).eval()
    eval_split = "test" if manifest.split("test") else "val"
    card = ModelCard(
        model_version=model_version or default_version(meta.backbone),
        grade_labels=tuple(meta.grade_labels),
        damage_labels=tuple(meta.damage_labels),
        preprocess=meta.preprocess,
        temperature=temperature,
        embedding_dim=meta.embedding_dim,
        backbone=meta.backbone,
        thresholds=thresholds,
        training_data=manifest.summary(),
        recipe={
            **meta.config,
            "epoch": meta.epoch,
            "tta_flip": tta_flip,
            "export": {"opset": OPSET, "exporter": exporter, "calibration": val_info},
        },
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        notes=notes
        if notes is not None
        else (SYNTHETIC_NOTE if "synth" in manifest.header.source.lower() else ""),
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:
        export_graph(wrapper, tmp, meta.preprocess.input_size, exporter=exporter)
        write_card(tmp, card)
        outputs = predict_records(
            OnnxModel(tmp),
            manifest.split(eval_split),
            progress=progress,
            desc=f"evaluate {eval_split}",
        )
        full = compute_metrics(outputs, manifest.split(eval_split), card, split=eval_split)
        parity = parity_check(
            wrapper, tmp, preprocessed(parity_recs, meta.preprocess), tolerance=tolerance
        )
        export_info = {
            **card.recipe["export"],
            "parity": {
                "images": parity.images,
                "tolerance": tolerance,
                "max_abs_diff": {k: float(f"{v:.3g}") for k, v in parity.max_abs_diff.items()},
            },
        }
        card = replace(
            card,
            metrics={**headline(full), **fit.card_metrics()},
            recipe={**card.recipe, "export": export_info},
        )
        write_card(tmp, card)  # metadata only: the graph the parity check ran is unchanged
        check_graph(tmp)
    # The unfamiliarity score, fitted on this manifest into the written file (None and a
    # warning when the manifest is too small to fit on: runtimes then abstain).
    card = replace(card, unfamiliarity=add_unfamiliarity(out_path, manifest))
    # The drift reference (vision/drift.py): the final file's outputs and the photos'
    # quality measures on the val split, which the service's drift report tests against.
    card = replace(card, drift_reference=add_drift_reference(out_path, manifest))
    report = ExportReport(
        out_path,
        temperature,
        parity,
        card.metrics,
        thresholds,
        card,
        notes=[fit.calibration.sentence],
    )
    if quantize:
        from training.quantize import quantize_model

        report = replace(report, quantization=quantize_model(out_path, manifest, progress=progress))
    return report
