"""A tiny, contract-valid ONNX grading model built with ``onnx.helper`` (no torch).

It is a REAL model run by the real ONNX Runtime through ``vision.model.OnnxModel`` (not a
mock): the service tests exercise the same decode -> quality -> preprocess -> ONNX ->
aggregate -> policy chain as production, in milliseconds. The shipped default model is
exercised by the end-to-end scenario test instead.

The outputs are fixed, readable functions of the 32x32 input, so a test steers them with
the colours it paints:

* ``t = clip(2 * (mean_r - (mean_g + mean_b) / 2), 0, 1)``, the image's "redness",
  sets the grade: ``grade_probs = softmax(-40 * (t - [0, .25, .5, .75, 1])**2)``.
  Neutral (grey/white) photos are confidently ``A_new`` (p ~ 0.92); a dark-red photo
  (t = 1) is confidently ``E_damaged``.
* ``damage_probs = sigmoid([t, blue_excess] @ W + b)``: scratch, dent and crack rise with
  the redness (crack ~ 0.98 at t = 1, ~ 0.0003 at t = 0), stain rises with the blue
  excess ``mean_b - (mean_r + mean_g) / 2``, tear / missing_part / packaging_damage stay
  at ~ 0.007.
* ``embedding`` (8-d, L2-normalised) = per-quadrant brightness minus the mean brightness
  (4) and per-quadrant green minus blue (4): the *layout* of the photo, independent of
  the redness that sets the grade. Two photos with the same layout match (cosine ~ 1);
  a photo whose bright quadrant is elsewhere does not.
* ``damage_cam [N,7,4,4]``: the per-cell redness (8x8-pixel cells) times a per-label
  weight, so heatmaps light up where the photo is red.
* ``unfamiliarity [N]`` = the green excess ``mean_g - (mean_r + mean_b) / 2`` (in
  [-1, 1]); the card's ``UnfamiliaritySpec`` puts the threshold at
  ``UNFAMILIAR_ABOVE`` = 0.4. No test scene comes near it (the rendered items on their
  tables stay below ~0.3, the dock simulator's frames below ~0.05), so every ordinary
  test photo is familiar; a strongly green photo (say RGB 30, 220, 30: 0.75) is a
  photo "the model has never seen", and the service abstains on it.

``build_test_model(path, unfamiliarity=False)`` writes the same model WITHOUT that output
and without the card's ``unfamiliarity`` entry: an older model that cannot tell, for the
tests of what the service does with one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vision.card import CARD_KEY, ModelCard, UnfamiliaritySpec
from vision.preprocess import PreprocessSpec

GRADES = ("A_new", "B_like_new", "C_good", "D_fair", "E_damaged")
DAMAGE = ("scratch", "dent", "crack", "stain", "tear", "missing_part", "packaging_damage")
SIZE = 32
OPSET = 17
UNFAMILIAR_ABOVE = 0.4  # green excess above which a photo is unfamiliar

# Rows: [t, blue_excess]; columns follow DAMAGE.
_DAMAGE_W = np.array(
    [[6.0, 6.0, 12.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 12.0, 0.0, 0.0, 0.0]], dtype=np.float32
)
_DAMAGE_B = np.array([-4.0, -4.5, -8.0, -3.0, -5.0, -5.0, -5.0], dtype=np.float32)
_CAM_W = np.array([0.6, 0.7, 1.0, 0.2, 0.1, 0.1, 0.1], dtype=np.float32).reshape(1, 7, 1, 1)


def _embedding_matrix() -> np.ndarray:
    """[12, 8] map from quadrant means (channel-major r0..r3, g0..g3, b0..b3)."""
    m = np.zeros((12, 8), dtype=np.float32)
    for j in range(4):  # centred quadrant brightness
        for c in range(3):
            for k in range(4):
                m[c * 4 + k, j] = (1.0 / 3.0) * ((1.0 if j == k else 0.0) - 0.25)
        m[4 + j, 4 + j] = 1.0  # green
        m[8 + j, 4 + j] = -1.0  # minus blue
    return m


def _const(name: str, value: np.ndarray | float | list[int]) -> TensorProto:
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
    return numpy_helper.from_array(arr, name)


def _nodes() -> list[onnx.NodeProto]:
    n = helper.make_node
    return [
        n("Cast", ["image"], ["x255"], to=TensorProto.FLOAT),
        n("Mul", ["x255", "inv255"], ["x"]),
        n("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),  # NCHW
        n("GlobalAveragePool", ["xt"], ["m4"]),
        n("Flatten", ["m4"], ["m"], axis=1),  # [N,3] mean r, g, b
        n("MatMul", ["m", "w_red"], ["red"]),  # [N,1]
        n("Mul", ["red", "two"], ["red2"]),
        n("Clip", ["red2", "zero", "one"], ["t"]),
        n("MatMul", ["m", "w_blue"], ["blue"]),
        # grade: softmax(-S (t - c)^2)
        n("Sub", ["t", "centers"], ["d"]),
        n("Mul", ["d", "d"], ["d2"]),
        n("Mul", ["d2", "neg_s"], ["glogits"]),
        n("Softmax", ["glogits"], ["grade_probs"], axis=1),
        # damage: sigmoid([t, blue] W + b)
        n("Concat", ["t", "blue"], ["feats"], axis=1),
        n("MatMul", ["feats", "w_damage"], ["dl0"]),
        n("Add", ["dl0", "b_damage"], ["dlogits"]),
        n("Sigmoid", ["dlogits"], ["damage_probs"]),
        # embedding: layout of the photo, L2-normalised
        n("AveragePool", ["xt"], ["quad"], kernel_shape=[16, 16], strides=[16, 16]),
        n("Flatten", ["quad"], ["qflat"], axis=1),  # [N,12] channel-major
        n("MatMul", ["qflat", "w_embed"], ["e0"]),
        n("ReduceSumSquare", ["e0"], ["ess"], axes=[1], keepdims=1),
        n("Add", ["ess", "eps"], ["ess_eps"]),
        n("Sqrt", ["ess_eps"], ["enorm"]),
        n("Div", ["e0", "enorm"], ["embedding"]),
        # CAM: per-cell redness x per-label weight
        n("AveragePool", ["xt"], ["cells"], kernel_shape=[8, 8], strides=[8, 8]),
        n("Conv", ["cells", "w_cell_red"], ["cred"]),  # [N,1,4,4]
        n("Mul", ["cred", "two"], ["cred2"]),
        n("Clip", ["cred2", "zero", "one"], ["ct"]),
        n("Mul", ["ct", "w_cam"], ["damage_cam"]),
    ]


def _unfamiliarity_nodes() -> list[onnx.NodeProto]:
    """unfamiliarity [N]: the photo's green excess."""
    n = helper.make_node
    return [
        n("MatMul", ["m", "w_green"], ["green"]),  # [N,1]
        n("Reshape", ["green", "flat_n"], ["unfamiliarity"]),
    ]


def _initializers() -> list[TensorProto]:
    return [
        _const("inv255", 1.0 / 255.0),
        _const("two", 2.0),
        _const("zero", 0.0),
        _const("one", 1.0),
        _const("w_red", np.array([[1.0], [-0.5], [-0.5]])),
        _const("w_blue", np.array([[-0.5], [-0.5], [1.0]])),
        _const("centers", np.linspace(0.0, 1.0, len(GRADES)).reshape(1, -1)),
        _const("neg_s", -40.0),
        _const("w_damage", _DAMAGE_W),
        _const("b_damage", _DAMAGE_B),
        _const("w_embed", _embedding_matrix()),
        _const("eps", 1e-12),
        _const("w_cell_red", np.array([1.0, -0.5, -0.5]).reshape(1, 3, 1, 1)),
        _const("w_cam", _CAM_W),
    ]


def _unfamiliarity_initializers() -> list[TensorProto]:
    return [
        _const("w_green", np.array([[-0.5], [1.0], [-0.5]])),
        _const("flat_n", np.array([-1], dtype=np.int64)),
    ]


def unfamiliarity_spec() -> UnfamiliaritySpec:
    return UnfamiliaritySpec(
        method="green_excess",
        threshold=UNFAMILIAR_ABOVE,
        false_alarm_rate=0.0,
        fitted_on={"note": "fixed by hand: no test scene comes near it (see the module)"},
    )


def model_card(version: str = "test-0.1", *, unfamiliarity: bool = True) -> ModelCard:
    return ModelCard(
        model_version=version,
        grade_labels=GRADES,
        damage_labels=DAMAGE,
        preprocess=PreprocessSpec(input_size=SIZE),
        embedding_dim=8,
        backbone="test-linear",
        notes="tiny deterministic test model (benchmarks/tiny_model.py); not for production",
        unfamiliarity=unfamiliarity_spec() if unfamiliarity else None,
    )


def build_test_model(path: Path, *, version: str = "test-0.1", unfamiliarity: bool = True) -> Path:
    """Write the test model to ``path`` (checked with ``onnx.checker``) and return it.

    ``unfamiliarity=False``: an older model, without the ``unfamiliarity`` output and
    without its card entry.
    """
    f = TensorProto.FLOAT
    outputs = [
        helper.make_tensor_value_info("grade_probs", f, ["N", len(GRADES)]),
        helper.make_tensor_value_info("damage_probs", f, ["N", len(DAMAGE)]),
        helper.make_tensor_value_info("embedding", f, ["N", 8]),
        helper.make_tensor_value_info("damage_cam", f, ["N", len(DAMAGE), 4, 4]),
    ]
    nodes, initializers = _nodes(), _initializers()
    if unfamiliarity:
        outputs.append(helper.make_tensor_value_info("unfamiliarity", f, ["N"]))
        nodes += _unfamiliarity_nodes()
        initializers += _unfamiliarity_initializers()
    graph = helper.make_graph(
        nodes,
        "returnlens_test_model",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", SIZE, SIZE, 3])],
        outputs,
        initializer=initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="returnlens-tests"
    )
    model.ir_version = 8
    card = model_card(version, unfamiliarity=unfamiliarity)
    helper.set_model_props(model, {CARD_KEY: card.to_json()})
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
