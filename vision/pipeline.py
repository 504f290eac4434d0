"""``grade()``: the one chain every front end runs (shopper API, dock station, CLI).

bytes -> decode -> quality gate -> preprocess -> ONNX (one batch) -> aggregate.
Photos that fail the gate are still scored (reviewers see them) but only photos that
pass are aggregated into the item's scores; with none passing there is no item score
and the policy asks for a retake.

The quality gate and the perceptual hash do not depend on the model's output, so they
run on a helper thread while ONNX Runtime scores the batch (both release the GIL in
OpenCV / ORT). On the benchmark box the gate costs about as much as one inference, so
overlapping them is most of the difference between the service and the decode+infer
floor for a single-photo request.

Bounded work (``Lanes``, one per process, shared by every Grader). A request's photos may
be legal and still heavy: a 36-megapixel PNG costs ~150 MB and over half a second to
decode, where a phone JPEG decoded at 1/4 scale costs ~20 MB and tens of milliseconds.
So the decode cost read from the header (``vision.decode.ImageHeader.decode_cost``)
routes each photo: a light one decodes on the caller's thread; a heavy one (over
``Lanes.heavy_bytes``) waits for the heavy-decode lane, a small pool (default one
thread, scheduled as a background job where the OS allows: ``SCHED_IDLE`` on Linux). A
few clients sending pixel bombs then share that one thread among themselves, bounded in
memory (one heavy decode at a time, each within the decode budget) and in CPU (at most
one core, and next to nothing of it while normal work wants the CPU), while other
requests' light decodes never queue behind them. The quality gate + ONNX
(and the service's heatmap renders) take a slot of ``Lanes.inference``: every photo
reaching them is already small, so a slot is held for about one normal request's
inference.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision import copydetect
from vision.aggregate import aggregate
from vision.card import ModelCard
from vision.decode import DecodeLimits, ImageHeader, MiB, check_header, decode_image
from vision.errors import DecodeError
from vision.model import SERVING_BATCH, OnnxModel
from vision.phash import phash
from vision.quality import PROFILES, QualityThresholds, assess_quality
from vision.types import DecodedPhoto, ItemScores, PhotoScores, QualityReport


@dataclass(frozen=True, eq=False)
class GradedPhoto:
    photo: DecodedPhoto
    quality: QualityReport
    phash: int
    scores: PhotoScores
    # Copy-detection descriptor (vision/copydetect.py); shopper profile only.
    copy: copydetect.CopyDescriptor | None = None


@dataclass(frozen=True, eq=False)
class GradeResult:
    photos: tuple[GradedPhoto, ...]
    model_version: str
    card: ModelCard

    @property
    def usable(self) -> tuple[GradedPhoto, ...]:
        return tuple(p for p in self.photos if p.quality.passed)

    @functools.cached_property
    def item(self) -> ItemScores | None:
        """This request's usable photos aggregated (None when no photo passed the gate).

        Computed on first use: the shopper path aggregates this upload together with the
        return's earlier photos (``serving.services.facts``) and never reads it, so it
        is not computed there a second time."""
        usable = [g.scores for g in self.photos if g.quality.passed]
        if not usable:
            return None
        return aggregate(usable, self.card.grade_labels, self.card.damage_labels)


# The quality gate measures at a 512 px working size and the model input is smaller, so a
# 12-megapixel JPEG is DCT-downscaled to 1/4 (1008x756) while decoding: about a third of
# the cost of a full decode, and stored photos stay large enough for reviewers.
DECODE_LONG_SIDE = 512


def decode_for_grading(
    data: bytes,
    input_size: int,
    limits: DecodeLimits | None = None,
    target_long_side: int = DECODE_LONG_SIDE,
    sha256: str | None = None,
) -> DecodedPhoto:
    """Decode an upload the way every grading path does (serving, dock, training, eval);
    ``sha256``: the upload's digest, when the caller has it (``decode_image``)."""
    return decode_image(
        data,
        limits=limits or DecodeLimits(),
        target_long_side=max(target_long_side, input_size),
        sha256=sha256,
    )


def opencv_on_caller_threads() -> None:
    """Run every OpenCV call on the thread that makes it (its own pool off), for a
    process whose requests and gate pool are already the parallelism (the service).

    With OpenCV's default pool (one thread per core) each resize, blur and colour
    conversion is split across its workers, and on two busy cores the hand-off costs
    more CPU than it saves: the gate took 14.1 ms of CPU per 1600 px photo for 10.2 ms of
    wall time, 9.9 ms of both with one thread (``benchmarks/gate_speed.py --cv-threads``);
    the copy descriptor 6.3 -> 5.3 ms of CPU. Process-wide; the dock station keeps the
    default for its single frame loop."""
    cv2.setNumThreads(1)


# Shared by every Grader of the process: the work it takes (gate + hash of one request's
# photos) is short and CPU-bound, so a few threads suffice however many requests overlap.
_GATE_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="returnlens-gate")

# A decode whose header-derived cost is over this goes to the heavy lane: a 12 MP phone
# JPEG (DCT draft: ~20 MiB) or a 4 MP PNG stays on the caller's thread; a 12 MP WebP or
# PNG, or anything bigger, waits its turn.
HEAVY_DECODE_BYTES = 32 * MiB
HEAVY_DECODE_NICE = 19  # the lowest nice, where SCHED_IDLE is not available


def _lower_priority() -> None:
    """Run this pool thread as a background job: Linux's SCHED_IDLE (CFS weight 3 where
    a nice-0 thread has 1024: it runs at full speed on an idle CPU and all but stops
    while other threads want the CPU), else nice 19. Linux schedules threads one by
    one; elsewhere this would change the whole process, so it is skipped."""
    if sys.platform != "linux":
        return
    tid = threading.get_native_id()
    # Not permitted here: the lane still bounds memory and concurrency.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, HEAVY_DECODE_NICE)
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))


class Lanes:
    """The process's bounds on CPU- and memory-heavy steps (module docstring).

    ``inference``: how many gate + ONNX runs (and heatmap renders) at once. ``heavy``:
    the pool that decodes heavy photos, ``heavy_threads`` wide. ``heavy_bytes``: the
    decode cost over which a photo is heavy.
    """

    def __init__(
        self, inference: int = 2, heavy_threads: int = 1, heavy_bytes: int = HEAVY_DECODE_BYTES
    ) -> None:
        self.inference = threading.BoundedSemaphore(inference)
        self.heavy = ThreadPoolExecutor(
            max_workers=heavy_threads,
            thread_name_prefix="returnlens-heavy-decode",
            initializer=_lower_priority,
        )
        self.heavy_bytes = heavy_bytes


_LANES = Lanes()  # the default: every Grader built without lanes shares it


class Grader:
    """A model plus a quality profile; cheap to share across threads."""

    def __init__(
        self,
        model: OnnxModel,
        *,
        profile: str = "shopper",
        thresholds: QualityThresholds | None = None,
        limits: DecodeLimits | None = None,
        target_long_side: int = DECODE_LONG_SIDE,
        gate_pool: Executor | None = _GATE_POOL,
        lanes: Lanes | None = None,
    ) -> None:
        self.model = model
        self.profile = profile
        self.thresholds = thresholds or PROFILES[profile]
        self.limits = limits or DecodeLimits()
        self.target_long_side = target_long_side
        self.gate_pool = gate_pool  # None: gate and inference run one after the other
        self.lanes = lanes or _LANES

    @classmethod
    def load(
        cls, path: Path | str, *, profile: str = "shopper", intra_op_threads: int | None = None
    ) -> Grader:
        return cls(OnnxModel(path, intra_op_threads=intra_op_threads), profile=profile)

    @property
    def card(self) -> ModelCard:
        return self.model.card

    @property
    def decode_target(self) -> int:
        """The long side grading decodes to (at least; ``decode_for_grading``)."""
        return max(self.target_long_side, self.model.card.preprocess.input_size)

    def decode(self, data: bytes, sha256: str | None = None) -> DecodedPhoto:
        """``decode_for_grading``; a photo whose header says it is heavy is decoded on the
        heavy lane (refusals the header allows come first, on this thread). ``sha256``:
        the upload's digest, when the caller has it."""
        light = self.decode_if_light(data, sha256)
        if light is not None:
            return light
        return self.lanes.heavy.submit(self._decode, data, sha256).result()

    def decode_if_light(self, data: bytes, sha256: str | None = None) -> DecodedPhoto | None:
        """``decode`` of a photo whose header says it is light (on this thread); None,
        and nothing decoded, for a heavy one."""
        header = check_header(data, limits=self.limits, target_long_side=self.decode_target)
        return None if self._heavy(header) else self._decode(data, sha256)

    def is_heavy(self, data: bytes) -> bool:
        """Whether ``decode`` would wait for the heavy lane (False for a photo its header
        already refuses: that refusal decodes nothing)."""
        try:
            header = check_header(data, limits=self.limits, target_long_side=self.decode_target)
        except DecodeError:
            return False
        return self._heavy(header)

    def _heavy(self, header: ImageHeader) -> bool:
        return header.decode_cost(self.decode_target) > self.lanes.heavy_bytes

    def _decode(self, data: bytes, sha256: str | None = None) -> DecodedPhoto:
        return decode_for_grading(
            data, self.model.card.preprocess.input_size, self.limits, self.target_long_side, sha256
        )

    def grade(self, uploads: Sequence[bytes]) -> GradeResult:
        """Decode every upload first, so one bad file refuses the request before any work."""
        return self.grade_decoded([self.decode(data) for data in uploads])

    def grade_decoded(
        self, photos: Sequence[DecodedPhoto], *, describe: bool = True
    ) -> GradeResult:
        """Gate, hash and score ``photos``; with ``describe`` (shopper profile) their
        copy descriptors too. The service passes False: it describes each photo on its
        own task beside this one, together with the copy check that reads the
        descriptor (``serving/services/copy_check.py``)."""
        if not photos:
            raise ValueError("grade needs at least one photo")
        describe = describe and self.profile == "shopper"
        with self.lanes.inference:
            if self.gate_pool is None:
                gates = self._gate(photos, describe)
                outputs = self.model.predict_images([p.rgb for p in photos], SERVING_BATCH)
            else:
                # One task per photo and check, so on a multi-core machine the quality
                # gate, the copy descriptor and the model run side by side rather than
                # one photo's checks after another's (a request's latency is the longest
                # of them, not their sum; the CPU spent is the same).
                quality = [self.gate_pool.submit(self._quality, p) for p in photos]
                copies = [
                    self.gate_pool.submit(self._copy, p) if describe else None for p in photos
                ]
                outputs = self.model.predict_images([p.rgb for p in photos], SERVING_BATCH)
                gates = [
                    (*q.result(), c.result() if c is not None else None)
                    for q, c in zip(quality, copies, strict=True)
                ]
        graded = tuple(
            GradedPhoto(photo=p, quality=q, phash=h, scores=outputs.photo(i), copy=c)
            for i, (p, (q, h, c)) in enumerate(zip(photos, gates, strict=True))
        )
        card = self.model.card
        return GradeResult(photos=graded, model_version=card.model_version, card=card)

    def _gate(
        self, photos: Sequence[DecodedPhoto], describe: bool
    ) -> list[tuple[QualityReport, int, copydetect.CopyDescriptor | None]]:
        """Quality verdict, perceptual hash and (``describe``: the reused-photo and
        catalog-photo checks read it) copy-detection descriptor of each photo."""
        return [(*self._quality(p), self._copy(p) if describe else None) for p in photos]

    def _quality(self, photo: DecodedPhoto) -> tuple[QualityReport, int]:
        return assess_quality(photo, self.thresholds, profile=self.profile), phash(photo.rgb)

    def _copy(self, photo: DecodedPhoto) -> copydetect.CopyDescriptor:
        return copydetect.describe(photo.rgb)

    def embed(self, photo: DecodedPhoto) -> np.ndarray:
        """Embedding of one photo, e.g. a catalog reference photo."""
        with self.lanes.inference:
            return self.model.predict_images([photo.rgb]).embedding[0]
