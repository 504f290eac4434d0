"""ONNX graph surgery for the unfamiliarity score: find the pooled features, add the score.

The score is computed inside the model file so that serving, the dock station and the
CLI (everything that runs ``vision.model.OnnxModel``) compute the same number from the
same photo. The appended nodes only *read* the backbone's pooled feature tensor (the
one that feeds the grade and embedding heads); no existing node, initializer or output
is touched, so the four contract outputs stay bit-identical.

Torch-free: plain ``onnx`` protobuf edits, valid for opset 13 and later (the axes of
``ReduceMean``/``ReduceL2`` moved from an attribute to an input in opset 18; both forms
are written as the model's opset requires).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vision.errors import ModelError

PREFIX = "unfamiliarity/"
NORM_EPS = 1e-12
_POOL_OPS = ("ReduceMean", "GlobalAveragePool")
_HEAD_OPS = ("Gemm", "MatMul")


@dataclass(frozen=True)
class ScoreParams:
    """The fitted parameters the appended nodes carry as initializers.

    ``score = ((c @ V)^2 @ weights) + |c|^2 * residual_weight`` with ``c`` the centred
    (optionally L2-normalised) pooled feature vector: see ``vision.unfamiliarity``.
    """

    mean: np.ndarray  # [C]
    components: np.ndarray  # [C,k], orthonormal columns
    weights: np.ndarray  # [k]
    residual_weight: float
    l2_normalise: bool


def opset_of(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ModelError("the model declares no ai.onnx opset", code="invalid_model")


def _consumers(graph: onnx.GraphProto, name: str) -> list[onnx.NodeProto]:
    return [n for n in graph.node if name in n.input]


def find_pooled(model: onnx.ModelProto) -> str:
    """Name of the pooled feature tensor ``[N,C]`` that feeds the heads.

    ``training.model.GraderNet`` pools the last feature map with ``fmap.mean((2, 3))``,
    which the exporters write as ``ReduceMean`` (or ``GlobalAveragePool`` + ``Flatten``);
    its output is the input of the grade head's and the embedding head's first
    ``Gemm``/``MatMul``. Exactly one such tensor must exist, or the graph is not one this
    module knows how to extend, and it refuses rather than guess.
    """
    graph = model.graph
    found: list[str] = []
    for node in graph.node:
        if node.op_type not in _POOL_OPS:
            continue
        out = node.output[0]
        users = _consumers(graph, out)
        if node.op_type == "GlobalAveragePool" or any(u.op_type == "Flatten" for u in users):
            flat = [u for u in users if u.op_type in ("Flatten", "Reshape", "Squeeze")]
            if not flat:
                continue
            out = flat[0].output[0]
            users = _consumers(graph, out)
        if sum(u.op_type in _HEAD_OPS for u in users) >= 2:
            found.append(out)
    if len(found) != 1:
        raise ModelError(
            f"cannot find the pooled feature tensor that feeds the heads ({len(found)} "
            "candidates); is this a ReturnLens export?",
            code="invalid_model",
        )
    return found[0]


def with_extra_output(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """A copy of the model that also returns the tensor ``name`` (for feature extraction)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return copy


def strip_score(model: onnx.ModelProto, output: str) -> onnx.ModelProto:
    """A copy without a previously appended score (its output, nodes and initializers)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    g = copy.graph
    keep_out = [o for o in g.output if o.name != output]
    keep_nodes = [n for n in g.node if not n.name.startswith(PREFIX)]
    keep_init = [t for t in g.initializer if not t.name.startswith(PREFIX)]
    del g.output[:]
    g.output.extend(keep_out)
    del g.node[:]
    g.node.extend(keep_nodes)
    del g.initializer[:]
    g.initializer.extend(keep_init)
    return copy


class _Builder:
    """Appends prefixed nodes and initializers to a graph."""

    def __init__(self, graph: onnx.GraphProto, opset: int) -> None:
        self.graph, self.opset, self.count = graph, opset, 0

    def const(self, key: str, value: np.ndarray) -> str:
        name = f"{PREFIX}{key}"
        self.graph.initializer.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        self.count += 1
        name = out or f"{PREFIX}{op}_{self.count}"
        self.graph.node.append(
            helper.make_node(op, inputs, [name], name=f"{PREFIX}{op}_{self.count}", **attrs)
        )
        return name

    def reduce(self, op: str, x: str, axes: list[int], keepdims: int) -> str:
        """ReduceMean/ReduceL2 with axes as attribute (< opset 18) or input (>= 18)."""
        if self.opset >= 18:
            ax = self.const(f"{op}_{self.count}_axes", np.array(axes, dtype=np.int64))
            return self.node(op, [x, ax], keepdims=keepdims)
        return self.node(op, [x], axes=axes, keepdims=keepdims)


def append_score(
    model: onnx.ModelProto,
    pooled: str,
    params: ScoreParams,
    *,
    output: str,
    fold_views: int = 1,
) -> onnx.ModelProto:
    """A copy of the model with the output ``output`` (float32 ``[N]``) appended.

    ``fold_views`` > 1 handles a test-time-augmented export whose backbone sees the batch
    ``fold_views`` times over (``FlipAveraged`` concatenates the photo and its mirror):
    the pooled features of the views are averaged back to one row per photo first.
    """
    copy = strip_score(model, output)
    b = _Builder(copy.graph, opset_of(copy))
    feats = pooled
    if fold_views > 1:
        c = params.mean.shape[0]
        shape = b.const("fold_shape", np.array([fold_views, -1, c], dtype=np.int64))
        feats = b.reduce("ReduceMean", b.node("Reshape", [pooled, shape]), [0], keepdims=0)
    if params.l2_normalise:
        norm = b.reduce("ReduceL2", feats, [1], keepdims=1)
        eps = b.const("eps", np.array(NORM_EPS, dtype=np.float32))
        feats = b.node("Div", [feats, b.node("Max", [norm, eps])])
    centred = b.node("Sub", [feats, b.const("mean", params.mean.astype(np.float32))])
    proj = b.node("MatMul", [centred, b.const("components", params.components.astype(np.float32))])
    sq = b.node("Mul", [proj, proj])
    inside = b.node("MatMul", [sq, b.const("weights", params.weights.astype(np.float32))])
    energy = b.node(
        "ReduceSum",
        [b.node("Mul", [centred, centred]), b.const("axis1", np.array([1], dtype=np.int64))],
        keepdims=0,
    )
    outside = b.node(
        "Mul", [energy, b.const("residual_weight", np.array(params.residual_weight, np.float32))]
    )
    b.node("Add", [inside, outside], out=output)
    copy.graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch"]))
    return copy
