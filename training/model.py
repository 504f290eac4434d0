"""The multi-head grader network and its checkpoint format.

One backbone feature map feeds three heads:

* grade: global average pool -> dropout -> linear -> G ordinal logits (the loss in
  ``training.losses`` respects the order; temperature scaling is added at export);
* damage: a 1x1 conv on the feature map gives D score maps. Their log-sum-exp pool
  (a smooth max, r = 5) gives the multi-label logits, and sigmoid(score map) is the class
  activation map. Because the CAM *is* the map that produced the logit, it is computed
  in the graph and exported with the model, and LSE pooling lets a small scratch drive
  the logit without being averaged away by a clean background;
* embedding: pooled features -> 2-layer MLP -> E dims -> L2 normalisation, trained with a
  supervised contrastive loss on SKU labels (wrong-item check, near-duplicate search).

The input is the model contract's uint8 (or float 0..255) RGB NHWC batch; casting,
layout change and the backbone's normalisation happen in ``forward`` so the ONNX export
carries them. There is no data-dependent control flow in ``forward``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.backbones import build_backbone
from vision.errors import ModelError
from vision.fsio import atomic_path
from vision.preprocess import PreprocessSpec

CHECKPOINT_FORMAT = "returnlens-checkpoint"
CHECKPOINT_VERSION = 1
LSE_R = 5.0  # log-sum-exp pooling sharpness: 0 -> mean pooling, large -> max pooling


class GraderOutputs(NamedTuple):
    grade_logits: Tensor  # [N, G]
    damage_logits: Tensor  # [N, D]
    embedding: Tensor  # [N, E], L2-normalised
    damage_cam: Tensor  # [N, D, h, w] in [0, 1]


class GraderNet(nn.Module):
    def __init__(
        self,
        backbone: str,
        num_grades: int,
        num_damage: int,
        embedding_dim: int = 128,
        pretrained: str | None = "imagenet",
    ) -> None:
        super().__init__()
        if num_grades < 2:
            raise ModelError(f"a grader needs at least 2 grade labels, got {num_grades}")
        if num_damage < 0 or embedding_dim < 2:
            raise ModelError("num_damage must be >= 0 and embedding_dim >= 2")
        self.backbone_name = backbone
        self.num_grades, self.num_damage, self.embedding_dim = num_grades, num_damage, embedding_dim
        self.features, spec = build_backbone(backbone, pretrained)
        channels = spec.feature_channels
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        self.dropout = nn.Dropout(0.2)
        self.grade_head = nn.Linear(channels, num_grades)
        # max(D, 1) maps then a slice: a label set without damage labels still exports.
        self.damage_head = nn.Conv2d(channels, max(num_damage, 1), kernel_size=1)
        self.embed_head = nn.Sequential(
            nn.Linear(channels, 512), nn.ReLU(inplace=False), nn.Linear(512, embedding_dim)
        )
        assert self.damage_head.bias is not None
        nn.init.constant_(self.damage_head.bias, -2.0)  # damage is the rarer state

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.features.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        ids = {id(p) for p in self.features.parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    def forward(self, image: Tensor) -> GraderOutputs:
        mean, std = self.mean, self.std
        assert isinstance(mean, Tensor) and isinstance(std, Tensor)
        x = (image.permute(0, 3, 1, 2).to(mean.dtype) - mean) / std
        fmap = self.features(x)
        pooled = fmap.mean(dim=(2, 3))
        grade_logits = self.grade_head(self.dropout(pooled))
        scores = self.damage_head(fmap)[:, : self.num_damage]
        area = float(scores.shape[2] * scores.shape[3])
        damage_logits = (torch.logsumexp(scores * LSE_R, dim=(2, 3)) - math.log(area)) / LSE_R
        damage_cam = torch.sigmoid(scores)
        embedding = F.normalize(self.embed_head(pooled), dim=1, eps=1e-8)
        return GraderOutputs(grade_logits, damage_logits, embedding, damage_cam)


class FlipAveraged(nn.Module):
    """Test-time augmentation inside the graph: the photo and its mirror image, averaged.

    Grade and damage logits are averaged, the embeddings summed and re-normalised, and
    the mirror's damage maps flipped back before averaging, so the outputs keep the
    contract's meaning. The model is then exactly mirror-invariant, which a returned
    item's grade is; it costs a second forward pass (the batch is doubled).
    """

    def __init__(self, net: GraderNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: Tensor) -> GraderOutputs:
        n = image.shape[0]
        both = self.net(torch.cat([image, image.flip(2)]))  # NHWC: dim 2 is the width
        cam = (both.damage_cam[:n] + both.damage_cam[n:].flip(3)) / 2
        return GraderOutputs(
            (both.grade_logits[:n] + both.grade_logits[n:]) / 2,
            (both.damage_logits[:n] + both.damage_logits[n:]) / 2,
            F.normalize(both.embedding[:n] + both.embedding[n:], dim=1, eps=1e-8),
            cam,
        )


@dataclass(frozen=True)
class CheckpointMeta:
    backbone: str
    grade_labels: tuple[str, ...]
    damage_labels: tuple[str, ...]
    embedding_dim: int
    preprocess: PreprocessSpec
    config: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    best_metric: float = float("nan")
    data_summary: dict[str, Any] = field(default_factory=dict)
    val_metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["grade_labels"] = list(self.grade_labels)
        data["damage_labels"] = list(self.damage_labels)
        data["preprocess"] = self.preprocess.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointMeta:
        return cls(
            backbone=str(data["backbone"]),
            grade_labels=tuple(data["grade_labels"]),
            damage_labels=tuple(data["damage_labels"]),
            embedding_dim=int(data["embedding_dim"]),
            preprocess=PreprocessSpec.from_dict(data["preprocess"]),
            config=dict(data.get("config", {})),
            epoch=int(data.get("epoch", 0)),
            best_metric=float(data.get("best_metric", float("nan"))),
            data_summary=dict(data.get("data_summary", {})),
            val_metrics=dict(data.get("val_metrics", {})),
        )


def save_checkpoint(
    path: Path,
    model: GraderNet,
    meta: CheckpointMeta,
    *,
    optimizer: Any = None,
    scheduler: Any = None,
    scaler: Any = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write atomically (tmp + rename) so an interrupted run never leaves a torn last.pt."""
    raw: Any = getattr(model, "module", model)
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "meta": meta.to_dict(),
        "model": raw.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "extra": extra or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: Path, map_location: str = "cpu") -> dict[str, Any]:
    """The raw payload (model state, optimizer state, meta dict, extra); ModelError if bad."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path} is not a readable ReturnLens checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path} is not a ReturnLens checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ModelError(
            f"checkpoint {path} has version {payload.get('version')}, "
            f"this code reads version {CHECKPOINT_VERSION}"
        )
    return payload


def load_checkpoint(path: Path, map_location: str = "cpu") -> tuple[GraderNet, CheckpointMeta]:
    """Rebuild the network from the checkpoint's own meta (no weights are downloaded)."""
    payload = read_checkpoint(path, map_location)
    try:
        meta = CheckpointMeta.from_dict(payload["meta"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"checkpoint {path} has malformed metadata ({exc})") from exc
    model = GraderNet(
        meta.backbone,
        len(meta.grade_labels),
        len(meta.damage_labels),
        meta.embedding_dim,
        pretrained=None,
    )
    try:
        model.load_state_dict(payload["model"], strict=True)
    except (RuntimeError, KeyError) as exc:
        raise ModelError(
            f"checkpoint {path} weights do not fit its own metadata: {str(exc).splitlines()[0]}"
        ) from exc
    model.eval()
    return model, meta
