"""The training recipe: one frozen pydantic schema, YAML round-trippable (torch-free).

Each field's type, bounds (``ge``/``gt``/``le``/``lt``), choices (``Literal``) and
``description`` are written once, here. Everything else is derived from them, so a new
knob is one line: ``returnlens train`` generates its flags from these fields
(``training/cli.py``), ``--set KEY=VALUE`` and ``--config file.yaml`` are coerced and
checked by the same validation, and the resolved recipe saved as ``OUT/config.yaml``
(read back by ``--resume``) is this model dumped. Unknown keys are refused rather than
ignored: a typo in ``lr_hed`` would otherwise silently train with the default. Every
refusal is one :class:`ConfigError` sentence naming the key, never pydantic's report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from training.config_fields import config_error
from vision.errors import ConfigError, ReturnLensError
from vision.preprocess import MAX_INPUT_SIZE, MIN_INPUT_SIZE, ResizeMode

EarlyStopMetric = Literal["val_grade_acc", "val_grade_mae", "val_loss"]
# metric -> which way is better
EARLY_STOP_METRICS: dict[EarlyStopMetric, Literal["max", "min"]] = {
    "val_grade_acc": "max",
    "val_grade_mae": "min",
    "val_loss": "min",
}
AmpMode = Literal["auto", "bf16", "fp16", "off"]
ClassBalance = Literal["loss", "sampler", "none"]
Device = Literal["auto", "cpu", "cuda"]
# Spellings of "no pretrained weights" (random initialisation) in configs and flags.
NO_WEIGHTS = ("", "none", "null", "random", "scratch")


class TrainingError(ReturnLensError):
    """Training cannot go on (non-finite loss, nothing to train on, ...)."""

    code = "training_failed"


def _not_a_flag(value: Any) -> Any:
    """YAML's ``true`` is an int to pydantic's lax mode; a count or a rate never is."""
    if isinstance(value, bool):
        raise ValueError("true/false is not a number")
    return value


Int = Annotated[int, BeforeValidator(_not_a_flag)]
Float = Annotated[float, BeforeValidator(_not_a_flag)]


class TrainConfig(BaseModel):
    """Every knob of a training run, with its bounds and the sentence its flag shows."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    manifest: tuple[str, ...] = Field((), description="manifest JSONL path(s); several are merged")
    backbone: str = Field(
        "efficientnet_lite0",
        description="feature backbone (training/backbones.py): efficientnet_lite0, "
        "efficientnet_lite2, mobilenet_v3_small, mobilenet_v3_large, efficientnet_b0, "
        "resnet18, resnet50",
    )
    pretrained: str | None = Field(
        "imagenet", description="imagenet | none | PATH to a local weights file"
    )
    init_from: str | None = Field(
        None,
        description="a previous run's checkpoint (best.pt) whose backbone and heads start "
        "this run: a fine-tune on new data (same labels and backbone), not a resume",
    )
    image_size: Int = Field(
        224, ge=MIN_INPUT_SIZE, le=MAX_INPUT_SIZE, description="square input side in pixels"
    )
    resize_mode: ResizeMode = Field(
        "letterbox", description="how a photo becomes square; the spec travels in the model card"
    )
    epochs: Int = Field(30, ge=1, description="passes over the training split")
    batch_size: Int = Field(64, ge=2, description="photos per step (per process under torchrun)")
    lr_backbone: Float = Field(5e-4, ge=0, description="AdamW learning rate of the backbone")
    lr_head: Float = Field(3e-3, gt=0, description="AdamW learning rate of the heads")
    weight_decay: Float = Field(0.02, ge=0, description="AdamW weight decay (not on biases)")
    warmup_epochs: Float = Field(1.0, ge=0, description="linear warm-up before the cosine decay")
    aug_strength: Float = Field(0.5, ge=0, le=1, description="augmentation, 0 (off) .. 1 (strong)")
    freeze_epochs: Int = Field(1, ge=0, description="train only the heads for N epochs")
    seed: Int = Field(0, description="seed of weights, sampling and augmentation")
    out: str = Field(
        "runs/train", description="output directory (checkpoints, metrics.jsonl, model.onnx)"
    )
    num_workers: Int = Field(4, ge=0, description="DataLoader worker processes")
    patience: Int = Field(8, ge=1, description="early-stopping patience in epochs")
    early_stop_metric: EarlyStopMetric = Field(
        "val_grade_acc", description="validation metric that picks best.pt and stops early"
    )
    amp: AmpMode = Field(
        "auto", description="mixed precision: bf16 where the GPU has it, fp16, or off (CPU)"
    )
    max_steps: Int | None = Field(None, ge=1, description="stop after N optimiser steps")
    max_minutes: Float | None = Field(
        None, gt=0, description="wall-clock budget; stops after the epoch that crosses it"
    )
    embedding_dim: Int = Field(128, ge=2, description="size of the SKU embedding")
    loss_grade: Float = Field(1.0, ge=0, description="weight of the SORD grade loss")
    loss_grade_mae: Float = Field(0.5, ge=0, description="weight of the expected-grade error")
    loss_damage: Float = Field(1.0, ge=0, description="weight of the damage BCE")
    loss_embedding: Float = Field(0.5, ge=0, description="weight of the SKU contrastive loss")
    sord_alpha: Float = Field(2.0, description="sharpness of the soft ordinal targets")
    supcon_temperature: Float = Field(0.1, gt=0, description="temperature of the contrastive loss")
    class_balance: ClassBalance = Field(
        "loss", description="rare grades: class-weighted loss, resampling, or none"
    )
    photos_per_sku: Int = Field(4, ge=1, description="photos of one SKU per batch group (PxK)")
    grad_clip: Float = Field(5.0, ge=0, description="gradient norm clip (0: off)")
    bn_momentum: Float | None = Field(
        None,
        gt=0,
        le=1,
        description="BatchNorm running-stat momentum while fine-tuning (none: the backbone's "
        "own; Lite0 keeps TF's 0.01, which lags the weights on a few hundred steps)",
    )
    ema_decay: Float | None = Field(
        None,
        gt=0,
        lt=1,
        description="per-step decay of a weight average that is validated, kept as best.pt "
        "and exported (none: off; ~0.99-0.999 on small sets)",
    )
    backbone_trainable: Float = Field(
        1.0,
        ge=0,
        le=1,
        description="share of the backbone (its deepest layers) that fine-tunes; the rest "
        "keeps the pretrained weights and BatchNorm statistics",
    )
    tta_flip: bool = Field(
        False,
        description="export the model averaged with its mirror image (twice the inference cost)",
    )
    device: Device = Field("auto", description="where to train")
    extra: dict[str, Any] = Field(
        default_factory=dict, description="free-form notes kept with the run"
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc, type(self)) from None

    @field_validator("manifest", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        if isinstance(value, str | Path):
            return (str(value),)
        if isinstance(value, list | tuple):
            return tuple(str(v) if isinstance(v, Path) else v for v in value)
        return value

    @field_validator("pretrained", mode="before")
    @classmethod
    def _no_weights(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in NO_WEIGHTS:
            return None
        return value

    @model_validator(mode="after")
    def _groups_fit_batches(self) -> TrainConfig:
        if self.photos_per_sku > self.batch_size:
            raise ValueError(
                f"photos_per_sku must be 1..batch_size ({self.batch_size}), "
                f"got {self.photos_per_sku}"
            )
        return self

    # ---- (de)serialisation -------------------------------------------------------------
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)

    @classmethod
    def from_dict(cls, data: Any) -> TrainConfig:
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            raise ConfigError("a training config must be a mapping of keys to values")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump()
        data["manifest"] = list(self.manifest)
        return data

    def replace(self, **changes: Any) -> TrainConfig:
        """Apply overrides (None values are skipped, so argparse defaults can be passed)."""
        return TrainConfig.from_dict(
            {**self.to_dict(), **{k: v for k, v in changes.items() if v is not None}}
        )

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> TrainConfig:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"training config is not valid YAML: {exc}") from exc
        return cls.from_dict(data or {})

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read training config {path}: {exc.strerror}") from exc
        # Manifest paths in a config file are relative to the working directory, like the
        # --manifest flag, so the shipped recipe can name datasets/generated/... directly.
        return cls.from_yaml(text)

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_yaml(), encoding="utf-8")
