"""Which model the figures are taken with, and its torch twin for the baselines.

Order: ``--model``; the shipped default (``serving/models/returnlens-default.onnx``);
else an *untrained* EfficientNet-Lite0 exported at 224 px with ``training.export``:
same graph, same input size, same speed as the shipped model, meaningless scores.
``--quick`` uses the tiny contract-valid model from ``benchmarks/tiny_model.py``.

Torch is imported inside the functions that need it only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness.common import BenchConfig, log
from benchmarks.tiny_model import build_test_model
from vision.errors import ConfigError

UNTRAINED_VERSION = "bench-untrained-lite0-224"
FALLBACK_BACKBONE = "mobilenet_v3_small"  # torch twin when the card names no known backbone


@dataclass(frozen=True)
class ModelChoice:
    path: Path
    kind: str  # "given" | "shipped default" | "untrained lite0" | "tiny test model"
    note: str

    def to_dict(self) -> dict[str, Any]:
        from vision.model import OnnxModel

        card = OnnxModel(self.path, intra_op_threads=1).card
        return {
            "path": str(self.path),
            "kind": self.kind,
            "note": self.note,
            "version": card.model_version,
            "backbone": card.backbone,
            "input_size": card.preprocess.input_size,
            "bytes": self.path.stat().st_size,
        }


def export_untrained(
    path: Path, *, backbone: str = "efficientnet_lite0", size: int = 224, embedding_dim: int = 128
) -> Path:
    """Export a randomly initialised GraderNet with a valid card (the speed twin)."""
    from training.export import ExportWrapper, export_graph
    from training.model import GraderNet
    from vision.card import ModelCard
    from vision.fsio import atomic_path
    from vision.preprocess import PreprocessSpec
    from vision.registry import write_card
    from vision.synth import DAMAGE_LABELS, GRADE_LABELS

    path.parent.mkdir(parents=True, exist_ok=True)
    net = GraderNet(backbone, len(GRADE_LABELS), len(DAMAGE_LABELS), embedding_dim, pretrained=None)
    card = ModelCard(
        model_version=UNTRAINED_VERSION,
        grade_labels=tuple(GRADE_LABELS),
        damage_labels=tuple(DAMAGE_LABELS),
        preprocess=PreprocessSpec(input_size=size),
        embedding_dim=embedding_dim,
        backbone=backbone,
        notes="Untrained: benchmark speed twin of the shipped model, not for grading.",
    )
    with atomic_path(path) as tmp:
        export_graph(ExportWrapper(net, 1.0), tmp, size)
        write_card(tmp, card)
    return path


def resolve_model(cfg: BenchConfig) -> ModelChoice:
    if cfg.model is not None:
        if not cfg.model.is_file():
            raise ConfigError(f"model file {cfg.model} does not exist", code="model_not_found")
        return ModelChoice(cfg.model.resolve(), "given", "the model named by --model")
    if cfg.quick:
        path = cfg.tmp / "models" / "tiny-test-model.onnx"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            build_test_model(path)
        return ModelChoice(
            path, "tiny test model", "--quick: the 32 px test model; the figures mean nothing"
        )
    from serving.models import default_model_path

    shipped = default_model_path()
    if shipped.is_file():
        return ModelChoice(shipped, "shipped default", "the model `returnlens serve` ships")
    path = cfg.tmp / "models" / f"{UNTRAINED_VERSION}.onnx"
    if not path.is_file():
        log(f"no shipped default model yet: exporting an untrained Lite0 to {path}")
        export_untrained(path)
    return ModelChoice(
        path,
        "untrained lite0",
        "the shipped default model is not built yet: an untrained "
        "EfficientNet-Lite0 at 224 px (same graph and speed, meaningless scores)",
    )


def torch_twin(card: Any) -> tuple[Any, str]:
    """An eval-mode torch module computing what the ONNX file computes (random weights).

    Returns (module taking uint8 NHWC, backbone name). The tiny test model names no real
    backbone, so its twin is a small torchvision one (only in --quick runs). A card whose
    recipe says ``tta_flip`` gets the mirror-averaged twin.
    """
    from training.backbones import BACKBONES
    from training.export import ExportWrapper
    from training.model import FlipAveraged, GraderNet

    backbone = card.backbone if card.backbone in BACKBONES else FALLBACK_BACKBONE
    net = GraderNet(
        backbone,
        len(card.grade_labels),
        len(card.damage_labels),
        card.embedding_dim,
        pretrained=None,
    )
    # A flip-averaged export (the shipped model) runs each photo and its mirror: so does
    # its twin, or the naive reference would do half the work.
    flip = bool((card.recipe or {}).get("tta_flip", False))
    module = ExportWrapper(FlipAveraged(net) if flip else net, card.temperature).eval()
    return module, backbone
