"""The training recipe as one frozen, YAML round-trippable dataclass (torch-free).

``returnlens train`` loads ``--config file.yaml`` (if any), applies command-line overrides
and writes the resolved recipe to ``config.yaml`` in the output directory, so every run
can be repeated from its own folder. Unknown keys are refused rather than ignored: a typo
in ``lr_hed`` would otherwise silently train with the default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vision.errors import ConfigError, ReturnLensError

EARLY_STOP_METRICS = {"val_grade_acc": "max", "val_grade_mae": "min", "val_loss": "min"}
RESIZE_MODES = ("letterbox", "center_crop", "stretch")
AMP_MODES = ("auto", "bf16", "fp16", "off")
CLASS_BALANCE = ("loss", "sampler", "none")
DEVICES = ("auto", "cpu", "cuda")


class TrainingError(ReturnLensError):
    """Training cannot go on (non-finite loss, nothing to train on, ...)."""

    code = "training_failed"


@dataclass(frozen=True)
class TrainConfig:
    manifest: tuple[str, ...] = ()
    backbone: str = "efficientnet_lite0"
    pretrained: str | None = "imagenet"
    image_size: int = 224
    resize_mode: str = "letterbox"
    epochs: int = 30
    batch_size: int = 64
    lr_backbone: float = 5e-4
    lr_head: float = 3e-3
    weight_decay: float = 0.02
    warmup_epochs: float = 1.0
    aug_strength: float = 0.5
    freeze_epochs: int = 1
    seed: int = 0
    out: str = "runs/train"
    num_workers: int = 4
    patience: int = 8
    early_stop_metric: str = "val_grade_acc"
    amp: str = "auto"
    max_steps: int | None = None
    max_minutes: float | None = None  # wall-clock budget: stop after the epoch that crosses it
    embedding_dim: int = 128
    loss_grade: float = 1.0
    loss_grade_mae: float = 0.5
    loss_damage: float = 1.0
    loss_embedding: float = 0.5
    sord_alpha: float = 2.0
    supcon_temperature: float = 0.1
    class_balance: str = "loss"
    photos_per_sku: int = 4
    grad_clip: float = 5.0
    # BatchNorm running-stat momentum while fine-tuning (None: the backbone's own; Lite0
    # keeps TF's 0.01, so on a few hundred steps its running statistics lag the weights).
    bn_momentum: float | None = None
    # Per-step decay of an exponential moving average of the weights, which is then
    # validated, kept as best.pt and exported (None: off; ~0.99-0.999 on small sets).
    ema_decay: float | None = None
    # Share of the backbone (its deepest layers) that fine-tunes; the rest keeps the
    # pretrained weights and BatchNorm statistics (1.0: everything trains).
    backbone_trainable: float = 1.0
    # Export the model averaged with its mirror image (training.model.FlipAveraged):
    # calibrated, parity-checked and served that way; twice the inference cost.
    tta_flip: bool = False
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes kept with the run

    def __post_init__(self) -> None:
        manifest = self.manifest
        if isinstance(manifest, str | Path):
            manifest = (str(manifest),)
        object.__setattr__(self, "manifest", tuple(str(m) for m in manifest))
        if isinstance(self.pretrained, str) and self.pretrained.strip().lower() in (
            "",
            "none",
            "null",
            "random",
            "scratch",
        ):
            object.__setattr__(self, "pretrained", None)
        self._validate()

    def _validate(self) -> None:
        checks: list[tuple[bool, str]] = [
            (16 <= self.image_size <= 2048, f"image_size must be 16..2048, got {self.image_size}"),
            (self.resize_mode in RESIZE_MODES, f"resize_mode must be one of {RESIZE_MODES}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}"),
            (self.lr_backbone >= 0 and self.lr_head > 0, "learning rates must be positive"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.warmup_epochs >= 0, "warmup_epochs must be >= 0"),
            (
                0.0 <= self.aug_strength <= 1.0,
                f"aug_strength must be 0..1, got {self.aug_strength}",
            ),
            (self.freeze_epochs >= 0, "freeze_epochs must be >= 0"),
            (self.num_workers >= 0, "num_workers must be >= 0"),
            (self.patience >= 1, "patience must be >= 1"),
            (
                self.early_stop_metric in EARLY_STOP_METRICS,
                f"early_stop_metric must be one of {sorted(EARLY_STOP_METRICS)}",
            ),
            (self.amp in AMP_MODES, f"amp must be one of {AMP_MODES}"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1"),
            (self.max_minutes is None or self.max_minutes > 0, "max_minutes must be > 0"),
            (self.embedding_dim >= 2, "embedding_dim must be >= 2"),
            (self.class_balance in CLASS_BALANCE, f"class_balance must be one of {CLASS_BALANCE}"),
            (1 <= self.photos_per_sku <= self.batch_size, "photos_per_sku must be 1..batch_size"),
            (self.grad_clip >= 0, "grad_clip must be >= 0 (0 = off)"),
            (
                self.bn_momentum is None or 0 < self.bn_momentum <= 1,
                "bn_momentum must be in (0, 1]",
            ),
            (self.ema_decay is None or 0 < self.ema_decay < 1, "ema_decay must be in (0, 1)"),
            (0 <= self.backbone_trainable <= 1, "backbone_trainable must be 0..1"),
            (isinstance(self.tta_flip, bool), "tta_flip must be true or false"),
            (self.device in DEVICES, f"device must be one of {DEVICES}"),
            (
                min(self.loss_grade, self.loss_grade_mae, self.loss_damage, self.loss_embedding)
                >= 0,
                "loss weights must be >= 0",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"invalid training config: {message}")

    # ---- (de)serialisation -------------------------------------------------------------
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        if not isinstance(data, dict):
            raise ConfigError("a training config must be a mapping of keys to values")
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise ConfigError(
                f"unknown training config key(s): {', '.join(unknown)}; valid "
                f"keys are {', '.join(cls.field_names())}"
            )
        return cls(**{k: _coerce(k, v) for k, v in data.items()})

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
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


_INT_FIELDS = {
    "image_size",
    "epochs",
    "batch_size",
    "freeze_epochs",
    "seed",
    "num_workers",
    "patience",
    "max_steps",
    "embedding_dim",
    "photos_per_sku",
}
_FLOAT_FIELDS = {
    "max_minutes",
    "lr_backbone",
    "lr_head",
    "weight_decay",
    "warmup_epochs",
    "aug_strength",
    "loss_grade",
    "loss_grade_mae",
    "loss_damage",
    "loss_embedding",
    "sord_alpha",
    "supcon_temperature",
    "grad_clip",
    "bn_momentum",
    "ema_decay",
    "backbone_trainable",
}


def _coerce(name: str, value: Any) -> Any:
    """YAML/CLI value -> field type, with a sentence naming the key when it cannot be."""
    if value is None:
        return None
    try:
        if name in _INT_FIELDS:
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if name in _FLOAT_FIELDS:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
    except (TypeError, ValueError):
        kind = "an integer" if name in _INT_FIELDS else "a number"
        raise ConfigError(f"training config key {name!r} must be {kind}, got {value!r}") from None
    if name == "extra" and not isinstance(value, dict):
        raise ConfigError("training config key 'extra' must be a mapping")
    if name == "manifest" and not isinstance(value, str | list | tuple):
        raise ConfigError("training config key 'manifest' must be a path or a list of paths")
    return value
