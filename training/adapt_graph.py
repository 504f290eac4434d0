"""ONNX graph surgery for ``returnlens adapt``: find the heads, swap their weights.

Adaptation keeps the exported backbone exactly as it is (bit for bit) and refits only
the small layers on top of it, so the new model is the old graph with a few
initializers replaced: the grade head's ``Gemm`` weight and bias, the damage head's 1x1
``Conv`` weight and bias, and the calibration temperature. Shapes never change (adapt
keeps the model's label lists), so every node, output and dynamic dimension stays valid
and the file still passes ``onnx.checker`` and ``OnnxModel``'s contract check.

The heads are found by structure, not by name, the way ``vision.unfamiliarity_graph``
finds the pooled features: the grade head is the ``Gemm`` on the pooled features whose
result reaches the ``grade_probs`` output; the temperature is the scalar initializer
that the logits are divided by on the way; the damage head is the ``Conv`` whose result
reaches both ``damage_probs`` and ``damage_cam``. A graph where any of these is not
exactly one node is refused rather than guessed at.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from vision.errors import ModelError
from vision.unfamiliarity_graph import PREFIX as SCORE_PREFIX
from vision.unfamiliarity_graph import find_pooled


@dataclass(frozen=True)
class HeadNames:
    """Where the adaptable parameters live in one exported graph."""

    pooled: str  # [V*N, C] pooled features (V views for a mirror-averaged export)
    feature_map: str  # [V*N, C, h, w] the damage head's input
    grade_weight: str  # [G, C] (Gemm transB=1)
    grade_bias: str  # [G]
    temperature: str  # scalar
    damage_weight: str  # [D', C, 1, 1] (D' = max(D, 1))
    damage_bias: str  # [D']


def _descendants(graph: onnx.GraphProto, start: str) -> set[str]:
    """Every tensor computed (directly or not) from ``start``; nodes are topologically sorted."""
    seen = {start}
    for node in graph.node:
        if any(i in seen for i in node.input):
            seen.update(node.output)
    return seen


def _one(found: list[str], what: str) -> str:
    if len(found) != 1:
        raise ModelError(
            f"cannot find the {what} in the graph ({len(found)} candidates); adapt needs a "
            "ReturnLens export",
            code="invalid_model",
        )
    return found[0]


def _grade_head(graph: onnx.GraphProto, pooled: str, inits: set[str]) -> tuple[str, str, str]:
    heads = []
    for node in graph.node:
        if node.op_type != "Gemm" or node.input[0] != pooled:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transB", 0) != 1 or attrs.get("transA", 0) != 0:
            continue
        if "grade_probs" in _descendants(graph, node.output[0]):
            heads.append(node)
    head = graph.node[
        [n.name for n in graph.node].index(_one([h.name for h in heads], "grade head"))
    ]
    weight, bias = head.input[1], head.input[2]
    if weight not in inits or bias not in inits:
        raise ModelError(
            "the grade head's weights are not constant initializers", code="invalid_model"
        )
    reach = _descendants(graph, head.output[0])
    temps = [
        n.input[1]
        for n in graph.node
        if n.op_type == "Div"
        and n.input[0] in reach
        and n.input[1] in inits
        and "grade_probs" in _descendants(graph, n.output[0])
    ]
    return weight, bias, _one(temps, "calibration temperature")


def _damage_head(graph: onnx.GraphProto, inits: set[str]) -> tuple[str, str, str]:
    found = []
    for node in graph.node:
        if node.op_type != "Conv" or len(node.input) < 3:
            continue
        reach = _descendants(graph, node.output[0])
        if "damage_probs" in reach and "damage_cam" in reach and "grade_probs" not in reach:
            found.append(node)
    names = [n.name for n in found]
    node = found[names.index(_one(names, "damage head"))]
    if node.input[1] not in inits or node.input[2] not in inits:
        raise ModelError(
            "the damage head's weights are not constant initializers", code="invalid_model"
        )
    return node.input[0], node.input[1], node.input[2]


def head_names(model: onnx.ModelProto) -> HeadNames:
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    pooled = find_pooled(model)
    grade_w, grade_b, temperature = _grade_head(graph, pooled, inits)
    fmap, damage_w, damage_b = _damage_head(graph, inits)
    return HeadNames(pooled, fmap, grade_w, grade_b, temperature, damage_w, damage_b)


def backbone_digest(model: onnx.ModelProto, names: HeadNames, preprocess: str) -> str:
    """SHA-256 of what the cached features depend on: the graph's nodes and every
    initializer except the adaptable heads, the temperature and the unfamiliarity score,
    plus the preprocessing. Two versions adapted from one another share it, so adapting
    an adapted model reuses the cache."""
    skip = {
        names.grade_weight,
        names.grade_bias,
        names.temperature,
        names.damage_weight,
        names.damage_bias,
    }
    digest = hashlib.sha256(preprocess.encode("utf-8"))
    for node in model.graph.node:
        if not node.name.startswith(SCORE_PREFIX):
            digest.update(f"{node.op_type}|{list(node.input)}|{list(node.output)}".encode())
    for t in sorted(model.graph.initializer, key=lambda t: t.name):
        if t.name not in skip and not t.name.startswith(SCORE_PREFIX):
            digest.update(t.name.encode("utf-8"))
            digest.update(numpy_helper.to_array(t).tobytes())
    return digest.hexdigest()


def initializer(model: onnx.ModelProto, name: str) -> np.ndarray:
    for t in model.graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    raise ModelError(f"the graph has no initializer {name!r}", code="invalid_model")


def with_initializers(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy with the named initializers replaced; each keeps its shape and dtype."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    remaining = dict(values)
    for i, t in enumerate(copy.graph.initializer):
        if t.name not in remaining:
            continue
        old = numpy_helper.to_array(t)
        new = np.asarray(remaining.pop(t.name), dtype=old.dtype)
        if new.shape != old.shape:
            raise ModelError(
                f"initializer {t.name!r} must keep its shape {old.shape}, got {new.shape}",
                code="invalid_model",
            )
        copy.graph.initializer[i].CopyFrom(numpy_helper.from_array(new, t.name))
    if remaining:
        raise ModelError(f"the graph has no initializers {sorted(remaining)}", code="invalid_model")
    return copy
