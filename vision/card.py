"""The model card: everything a runtime needs, stored as JSON in ONNX ``metadata_props``.

Like timm's ``PretrainedCfg``, the preprocessing spec and label lists travel with the
weights, so a runtime never restates them in code.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from vision.errors import ModelError
from vision.preprocess import PreprocessSpec

CARD_KEY = "returnlens_card"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class UnfamiliaritySpec:
    """How far a photo lies from the model's training data, and where "too far" starts.

    The score itself is an ONNX output (``output``, ``[N]`` float32) computed inside the
    graph, so serving, the dock and the CLI compute the same value; the card carries the
    method, the threshold and how it was fitted. A photo with ``score > threshold`` is
    unfamiliar. ``false_alarm_rate`` is the share of in-distribution validation photos
    the threshold flags (the target it was fitted for); ``fitted_on`` says on what.
    """

    method: str
    threshold: float
    false_alarm_rate: float
    output: str = "unfamiliarity"
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def is_familiar(self, score: float) -> bool:
        return math.isfinite(score) and score <= self.threshold

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnfamiliaritySpec:
        return cls(
            method=str(data["method"]),
            threshold=float(data["threshold"]),
            false_alarm_rate=float(data["false_alarm_rate"]),
            output=str(data.get("output", "unfamiliarity")),
            fitted_on=dict(data.get("fitted_on", {})),
        )


@dataclass(frozen=True)
class ModelCard:
    model_version: str
    grade_labels: tuple[str, ...]
    damage_labels: tuple[str, ...]
    preprocess: PreprocessSpec
    temperature: float = 1.0
    embedding_dim: int = 128
    backbone: str = "efficientnet_lite0"
    # Suggested operating points, e.g. auto_approve_confidence, wrong_item_similarity.
    thresholds: dict[str, float] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    notes: str = ""
    # None: an older model without an unfamiliarity score; runtimes then abstain.
    unfamiliarity: UnfamiliaritySpec | None = None
    schema_version: int = SCHEMA_VERSION
    # None: no drift reference (an older card). The histograms of a validation set
    # (``vision/drift.py``, ``fit_reference``) that live drift is tested against.
    drift_reference: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["grade_labels"] = list(self.grade_labels)
        data["damage_labels"] = list(self.damage_labels)
        data["preprocess"] = self.preprocess.to_dict()
        if self.drift_reference is None:  # older cards' JSON stays byte-identical
            del data["drift_reference"]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        try:
            if int(data.get("schema_version", 0)) != SCHEMA_VERSION:
                raise ModelError(
                    f"model card schema {data.get('schema_version')} is not supported "
                    f"(this runtime reads schema {SCHEMA_VERSION})",
                    code="unsupported_model",
                )
            return cls(
                model_version=str(data["model_version"]),
                grade_labels=tuple(data["grade_labels"]),
                damage_labels=tuple(data["damage_labels"]),
                preprocess=PreprocessSpec.from_dict(data["preprocess"]),
                temperature=float(data.get("temperature", 1.0)),
                embedding_dim=int(data.get("embedding_dim", 128)),
                backbone=str(data.get("backbone", "")),
                thresholds={k: float(v) for k, v in data.get("thresholds", {}).items()},
                training_data=dict(data.get("training_data", {})),
                metrics=dict(data.get("metrics", {})),
                recipe=dict(data.get("recipe", {})),
                created_at=str(data.get("created_at", "")),
                notes=str(data.get("notes", "")),
                unfamiliarity=UnfamiliaritySpec.from_dict(data["unfamiliarity"])
                if data.get("unfamiliarity")
                else None,
                drift_reference=dict(data["drift_reference"])
                if data.get("drift_reference")
                else None,
            )
        except KeyError as exc:
            raise ModelError(f"model card lacks the field {exc.args[0]!r}") from exc

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ModelError(f"model card is not valid JSON: {exc}") from exc
