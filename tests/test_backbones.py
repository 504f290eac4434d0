"""Backbones: the mapped Lite0 ImageNet weights recognise a real photo; torchvision
backbones build and run; bad names and bad weight files are refused with a sentence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.backbones import BACKBONES, IMAGENET_MEAN, build_backbone, get_backbone
from training.lite0 import (
    EfficientNetLite0,
    TFSamePad,
    lite0_weights_path,
    load_lite0_weights,
    map_reference_key,
)
from vision.errors import ConfigError, ModelError
from vision.preprocess import PreprocessSpec, preprocess

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> object:
    """The CI CPU is shared: one intra-op thread is faster than two fighting threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite0:
    model = EfficientNetLite0(num_classes=1000)
    load_lite0_weights(model)
    return model.eval()


def test_chelsea_is_a_cat(lite0: EfficientNetLite0) -> None:
    """The mapped weights classify scikit-image's chelsea photo as a cat.

    center_crop at 224 is the usual ImageNet evaluation framing (square centre crop,
    then resize); Lite0's normalisation (x - 127) / 128 is applied as in GraderNet.
    """
    from skimage import data
    from torchvision.models import ResNet18_Weights

    names = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    rgb = preprocess(data.chelsea(), PreprocessSpec(224, "center_crop"))
    x = (torch.from_numpy(rgb).permute(2, 0, 1)[None].float() - 127.0) / 128.0
    with torch.no_grad():
        probs = lite0(x).softmax(dim=1)[0]
    top = probs.topk(3)
    ranked = [
        (names[int(i)], round(float(p), 3)) for p, i in zip(top.values, top.indices, strict=True)
    ]
    print("Lite0 top-3 for chelsea:", ranked)
    assert any(int(i) in CAT_CLASSES for i in top.indices), ranked
    assert int(top.indices[0]) in CAT_CLASSES, ranked
    assert float(probs[list(CAT_CLASSES)].sum()) > 0.5


def test_every_reference_key_is_mapped() -> None:
    reference = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    own = EfficientNetLite0(num_classes=1000).state_dict()
    mapped = {map_reference_key(k) for k in reference}
    assert None not in mapped
    assert mapped == set(own)


def test_unmapped_or_misshapen_weights_fail_loudly(tmp_path: Path) -> None:
    reference = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    extra = dict(reference, **{"_blocks.0._se_reduce.weight": torch.zeros(8, 32, 1, 1)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(ModelError, match="has no mapping"):
        load_lite0_weights(EfficientNetLite0(), tmp_path / "extra.pth")
    bad = dict(reference, **{"_conv_head.weight": torch.zeros(1280, 321, 1, 1)})
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ModelError, match="shape"):
        load_lite0_weights(EfficientNetLite0(), tmp_path / "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a state dict")
    with pytest.raises(ModelError, match="cannot read"):
        load_lite0_weights(EfficientNetLite0(), tmp_path / "junk.pth")


@pytest.mark.parametrize("size", [7, 8, 63, 64])
@pytest.mark.parametrize("kernel", [3, 5])
def test_tf_same_padding_gives_ceil_output(size: int, kernel: int) -> None:
    conv = torch.nn.Conv2d(1, 1, kernel, stride=2)
    out = conv(TFSamePad(kernel, 2)(torch.zeros(1, 1, size, size)))
    assert out.shape[-1] == -(-size // 2)


@pytest.mark.parametrize(
    "name",
    [
        "efficientnet_lite0",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "efficientnet_b0",
        "resnet18",
    ],
)
def test_backbone_builds_and_runs_at_64px(name: str) -> None:
    torch.manual_seed(0)
    pretrained = "imagenet" if name == "efficientnet_lite0" else None
    features, spec = build_backbone(name, pretrained)
    features.eval()
    with torch.no_grad():
        out = features(torch.randn(2, 3, 64, 64))
    assert out.shape[:2] == (2, spec.feature_channels)
    assert torch.isfinite(out).all()


def test_registry_lists_the_issue_backbones() -> None:
    assert {
        "efficientnet_lite0",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "efficientnet_b0",
        "resnet18",
    } <= set(BACKBONES)


def test_unknown_backbone_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        get_backbone("vgg16")
    assert "vgg16" in err.value.message and "efficientnet_lite0" in err.value.message


def test_local_torchvision_weights_file(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    torch.manual_seed(1)
    src = resnet18(weights=None, num_classes=10)  # another classifier size is dropped
    torch.save(src.state_dict(), tmp_path / "r18.pth")
    features, spec = build_backbone("resnet18", str(tmp_path / "r18.pth"))
    assert torch.equal(features.state_dict()["body.0.weight"], src.conv1.weight)
    assert spec.mean == IMAGENET_MEAN
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(ModelError, match="does not fit resnet18"):
        build_backbone("resnet18", str(tmp_path / "wrong.pth"))
    with pytest.raises(ConfigError, match="does not exist"):
        build_backbone("resnet18", str(tmp_path / "missing.pth"))


def test_imagenet_weights_are_never_downloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="not available offline"):
        build_backbone("mobilenet_v3_small", "imagenet")


# What the weights were trained with, written out here rather than read from the code under
# test: TF's (x - 127) / 128 for the Lite family, torchvision's ImageNet mean/std otherwise.
_LITE = ((127.0, 127.0, 127.0), (128.0, 128.0, 128.0))
_IMAGENET = ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))


@pytest.mark.parametrize(
    ("name", "norm"),
    [("efficientnet_lite0", _LITE), ("mobilenet_v3_small", _IMAGENET), ("resnet18", _IMAGENET)],
)
def test_normalisation_per_backbone(
    name: str, norm: tuple[tuple[float, ...], tuple[float, ...]], tmp_path: Path
) -> None:
    """The exported graph normalises uint8 RGB with its backbone's own mean/std, per
    channel and in RGB order: a constant image is fed through the real ONNX export with
    the backbone swapped for an identity whose damage map is sigmoid(normalised pixel)."""
    import onnxruntime as ort

    from training.export import ExportWrapper, export_graph
    from training.model import GraderNet

    model = GraderNet(name, 5, 3, embedding_dim=4, pretrained=None)
    model.features = torch.nn.Identity()  # the "feature map" is the normalised input
    model.grade_head, model.embed_head = torch.nn.Linear(3, 5), torch.nn.Linear(3, 4)
    model.damage_head = torch.nn.Conv2d(3, 3, kernel_size=1)
    with torch.no_grad():
        model.damage_head.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        model.damage_head.bias.zero_()
    export_graph(ExportWrapper(model, 1.0), tmp_path / "m.onnx", 32)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    pixel = np.array([10, 128, 250], np.uint8)  # a different value per channel
    image = np.broadcast_to(pixel, (1, 32, 32, 3)).copy()
    cam = session.run(["damage_cam"], {"image": image})[0][0]  # [3, 32, 32]
    inside = np.log(cam / (1 - cam))  # undo the sigmoid
    mean, std = (np.array(v) for v in norm)
    want = (pixel - mean) / std
    assert np.allclose(inside, want[:, None, None], atol=1e-4), (inside[:, 0, 0], want)
    spec = get_backbone(name)
    assert np.allclose(spec.mean, mean) and np.allclose(spec.std, std)


def test_lite2_weights_map_and_chelsea_is_a_cat() -> None:
    """Lite2 reuses Lite0's blocks with its own stage table; its ImageNet weights map
    key by key and classify chelsea (at its native 260 px) as a cat."""
    from skimage import data

    from training.lite0 import LITE2_STAGES, lite2_weights_path

    model = EfficientNetLite0(num_classes=1000, stages=LITE2_STAGES)
    load_lite0_weights(model, lite2_weights_path())
    rgb = preprocess(data.chelsea(), PreprocessSpec(260, "center_crop"))
    x = (torch.from_numpy(rgb).permute(2, 0, 1)[None].float() - 127.0) / 128.0
    with torch.no_grad():
        probs = model.eval()(x).softmax(dim=1)[0]
    assert int(probs.argmax()) in CAT_CLASSES
    assert float(probs[list(CAT_CLASSES)].sum()) > 0.5
    features, spec = build_backbone("efficientnet_lite2", "imagenet")
    assert spec.feature_channels == 1280
    assert len(list(features.get_submodule("blocks").children())) == 21
