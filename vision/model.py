"""ONNX Runtime wrapper that enforces the model contract.

One session per process; ``run`` is thread-safe in ONNX Runtime, so request handlers
share it. The card inside the file decides input size and labels; nothing is restated
here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from vision.card import CARD_KEY, ModelCard
from vision.errors import ModelError
from vision.preprocess import preprocess_batch
from vision.types import PhotoScores

OUTPUT_NAMES = ("grade_probs", "damage_probs", "embedding", "damage_cam")
INPUT_NAME = "image"


@dataclass(frozen=True, eq=False)
class ModelOutputs:
    """Batched outputs, one row per input image."""

    grade_probs: np.ndarray  # [N,G]
    damage_probs: np.ndarray  # [N,D]
    embedding: np.ndarray  # [N,E]
    damage_cam: np.ndarray  # [N,D,h,w]
    unfamiliarity: np.ndarray | None = None  # [N]; None when the model has no such output
    familiar: np.ndarray | None = None  # [N] bool, against the card's threshold

    def __len__(self) -> int:
        return int(self.grade_probs.shape[0])

    def photo(self, i: int) -> PhotoScores:
        return PhotoScores(
            grade_probs=self.grade_probs[i],
            damage_probs=self.damage_probs[i],
            embedding=self.embedding[i],
            damage_cam=self.damage_cam[i],
            unfamiliarity=None if self.unfamiliarity is None else float(self.unfamiliarity[i]),
            familiar=None if self.familiar is None else bool(self.familiar[i]),
        )


# Photos per ONNX Runtime run on the service and dock paths (``predict_images``).
SERVING_BATCH = 1


def concat_outputs(parts: Sequence[ModelOutputs]) -> ModelOutputs:
    """Several runs' outputs as one, in order (the optional scores present in all or none)."""

    def cat(name: str) -> np.ndarray | None:
        arrays = [getattr(p, name) for p in parts]
        return None if any(a is None for a in arrays) else np.concatenate(arrays)

    grade, damage, embedding, cam = (
        np.concatenate([getattr(p, n) for p in parts]) for n in _REQUIRED_FIELDS
    )
    return ModelOutputs(
        grade, damage, embedding, cam, unfamiliarity=cat("unfamiliarity"), familiar=cat("familiar")
    )


_REQUIRED_FIELDS = ("grade_probs", "damage_probs", "embedding", "damage_cam")


def session_options(intra_op_threads: int | None = None) -> ort.SessionOptions:
    """Session options sized for small CPU boxes.

    ``intra_op_threads`` None means one thread per core. With several worker processes
    each session must use only its share of the cores, or the workers oversubscribe the
    CPU, so the caller passes that share: this module reads no environment, the service
    and the dock take it from ``serving.settings.Settings`` (``RETURNLENS_ORT_THREADS``).

    Intra-op threads do not spin-wait between runs: in a server (or the dock station) the
    same cores decode, run the quality gate and serve HTTP in other threads, and spinning
    ORT threads took that CPU away. Measured on 2 cores (benchmarks/README.md): +28%
    service photos/s and -25% CPU per photo, c1 latency unchanged, ~2 ms slower batch 1.
    """
    opts = ort.SessionOptions()
    threads = intra_op_threads or os.cpu_count() or 1
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def read_card(session: ort.InferenceSession) -> ModelCard:
    meta = session.get_modelmeta().custom_metadata_map
    if CARD_KEY not in meta:
        raise ModelError(
            f"the ONNX file has no {CARD_KEY!r} entry in metadata_props", code="invalid_model"
        )
    return ModelCard.from_json(meta[CARD_KEY])


class OnnxModel:
    """A loaded grading model: the ONNX session plus its card."""

    def __init__(
        self,
        path: Path | str,
        *,
        intra_op_threads: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} does not exist", code="model_not_found")
        data = self.path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        try:
            self.session = ort.InferenceSession(
                data,
                sess_options=session_options(intra_op_threads),
                providers=list(providers or ["CPUExecutionProvider"]),
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(
                f"ONNX Runtime cannot load {self.path.name}: {exc}", code="invalid_model"
            ) from exc
        self.card = read_card(self.session)
        self._check_contract()

    @property
    def version(self) -> str:
        return self.card.model_version

    def _check_contract(self) -> None:
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME or inputs[0].type != "tensor(uint8)":
            raise ModelError(
                "the model must take one uint8 input named 'image' [N,H,W,3]", code="invalid_model"
            )
        shape = inputs[0].shape
        size = self.card.preprocess.input_size
        if len(shape) != 4 or shape[1:] != [size, size, 3]:
            raise ModelError(
                f"input shape {shape} does not match the card's {size}x{size}x3",
                code="invalid_model",
            )
        names = [o.name for o in self.session.get_outputs()]
        missing = [n for n in OUTPUT_NAMES if n not in names]
        if missing:
            raise ModelError(f"the model lacks the outputs {missing}", code="invalid_model")
        self._outputs = list(OUTPUT_NAMES)
        spec = self.card.unfamiliarity
        if spec is not None and spec.output in names:
            self._outputs.append(spec.output)

    @property
    def has_unfamiliarity(self) -> bool:
        """Whether this model scores how unfamiliar a photo is (else runtimes abstain)."""
        return len(self._outputs) > len(OUTPUT_NAMES)

    def predict(self, batch: np.ndarray) -> ModelOutputs:
        """Run a uint8 ``[N,H,W,3]`` batch already preprocessed with the card's spec."""
        if batch.dtype != np.uint8 or batch.ndim != 4:
            raise ValueError(f"expected uint8 NHWC batch, got {batch.dtype} {batch.shape}")
        if batch.shape[0] == 0:
            raise ValueError("empty batch")
        out = self.session.run(self._outputs, {INPUT_NAME: batch})
        arrays = [np.asarray(o, dtype=np.float32) for o in out]
        result = ModelOutputs(*arrays[: len(OUTPUT_NAMES)])
        spec = self.card.unfamiliarity
        if spec is not None and len(arrays) > len(OUTPUT_NAMES):
            score = arrays[len(OUTPUT_NAMES)].reshape(-1)
            familiar = np.isfinite(score) & (score <= spec.threshold)
            result = replace(result, unfamiliarity=score, familiar=familiar)
        g, d = len(self.card.grade_labels), len(self.card.damage_labels)
        if result.grade_probs.shape[1] != g or result.damage_probs.shape[1] != d:
            raise ModelError(
                "output sizes do not match the card's label lists", code="invalid_model"
            )
        return result

    def predict_images(
        self, images: Sequence[np.ndarray], max_batch: int | None = None
    ) -> ModelOutputs:
        """Preprocess RGB images with the card's spec and run them, at most ``max_batch``
        per run (None: one batch).

        The graders pass ``SERVING_BATCH``: on a CPU a batch saves almost no time per
        photo (the flip-averaged EfficientNet-Lite0 on 2 cores: 10.9 ms at batch 1,
        10.4 ms a photo at batch 4) while ONNX Runtime's activation memory grows with it
        (+30 MB at batch 1, +120 MB at batch 4), and each concurrent inference holds its
        own. Evaluation keeps its big batches."""
        images = list(images)
        step = max(1, len(images) if max_batch is None else max_batch)
        parts = [
            self.predict(preprocess_batch(images[i : i + step], self.card.preprocess))
            for i in range(0, max(len(images), 1), step)  # none: predict refuses it, as before
        ]
        return parts[0] if len(parts) == 1 else concat_outputs(parts)

    def warmup(self, batch_sizes: Sequence[int] = (SERVING_BATCH,)) -> None:
        """Run dummy batches so the first real request does not pay for graph set-up
        (the serving batch only: a bigger one would grow the memory arena for nothing)."""
        size = self.card.preprocess.input_size
        for n in batch_sizes:
            self.predict(np.zeros((n, size, size, 3), dtype=np.uint8))
