"""The single preprocessing definition.

The spec travels inside the model card (ONNX ``metadata_props``), so training's eval
transform, the export parity check, serving and the dock station all resize the same
way. Only geometry happens here: the output is uint8 RGB, and casting/normalisation
happen inside the ONNX graph so no runtime can normalise differently.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import cv2
import numpy as np

from vision.area import area_shrink
from vision.errors import ConfigError

ResizeMode = Literal["letterbox", "center_crop", "stretch"]
Interpolation = Literal["area", "linear", "cubic"]
# Input sides a model may take (the training config's image_size shares these bounds).
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 16, 2048

_CV2_INTERP = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


@dataclass(frozen=True)
class PreprocessSpec:
    """How a decoded RGB photo becomes the model's uint8 input tensor."""

    input_size: int = 224
    resize_mode: ResizeMode = "letterbox"
    interpolation: Interpolation = "area"
    pad_value: int = 0

    def __post_init__(self) -> None:
        if not MIN_INPUT_SIZE <= self.input_size <= MAX_INPUT_SIZE:
            raise ConfigError(
                f"input_size must be between {MIN_INPUT_SIZE} and {MAX_INPUT_SIZE}, "
                f"got {self.input_size}"
            )
        if self.resize_mode not in get_args(ResizeMode):
            raise ConfigError(f"unknown resize_mode {self.resize_mode!r}")
        if self.interpolation not in _CV2_INTERP:
            raise ConfigError(f"unknown interpolation {self.interpolation!r}")
        if not 0 <= self.pad_value <= 255:
            raise ConfigError(f"pad_value must be 0..255, got {self.pad_value}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        known = {
            k: data[k]
            for k in ("input_size", "resize_mode", "interpolation", "pad_value")
            if k in data
        }
        try:
            return cls(**known)
        except TypeError as exc:  # wrong value types
            raise ConfigError(f"invalid preprocess spec: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> PreprocessSpec:
        return cls.from_dict(json.loads(text))


def _resize(rgb: np.ndarray, width: int, height: int, spec: PreprocessSpec) -> np.ndarray:
    # INTER_AREA only makes sense when shrinking; use linear when enlarging.
    if spec.interpolation == "area" and (width > rgb.shape[1] or height > rgb.shape[0]):
        return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
    if spec.interpolation == "area":
        return area_shrink(rgb, (width, height))
    return cv2.resize(rgb, (width, height), interpolation=_CV2_INTERP[spec.interpolation])


def preprocess(rgb: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Resize one HxWx3 uint8 RGB image to the spec's square input (uint8)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected HxWx3 uint8 RGB, got shape {rgb.shape} dtype {rgb.dtype}")
    size = spec.input_size
    h, w = rgb.shape[:2]
    if spec.resize_mode == "stretch":
        return _resize(rgb, size, size, spec)
    if spec.resize_mode == "center_crop":
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        return _resize(rgb[top : top + side, left : left + side], size, size, spec)
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = _resize(rgb, nw, nh, spec)
    out = np.full((size, size, 3), spec.pad_value, dtype=np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = resized
    return out


def preprocess_batch(images: list[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    """Stack preprocessed images into the model's uint8 ``[N,H,W,3]`` input."""
    if not images:
        return np.zeros((0, spec.input_size, spec.input_size, 3), dtype=np.uint8)
    return np.stack([preprocess(img, spec) for img in images])
