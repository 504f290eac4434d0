"""``ReturnLensService``: what every use case needs, built once per process.

It holds storage, the two graders (shopper and dock quality profiles, usually one shared
ONNX session), the policy, an injected clock and the process-local caches. It has no use
case methods: those are plain functions of the modules ``shopper``, ``dock``,
``review``, ``admin`` and ``media`` that take it as their first argument, so a route or
a test calls the function that does the work (``shopper.upload_photos(svc, ...)``)
instead of a facade forwarding to it. Every function is synchronous and thread-safe;
the API runs them off the event loop. Every write appends to the audit log in the same
transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from serving.policy import Policy
from serving.services.copy_index import CopyIndex
from serving.services.decide import check_policy_fits, policy_for_model
from serving.services.phash_index import PhashIndex
from serving.services.review_order import ReviewOrder
from serving.storage.db import Database
from serving.storage.heatmap_cache import HeatmapCache, cache_root_for
from serving.storage.photostore import PhotoStorage
from vision.pipeline import Grader

if TYPE_CHECKING:
    from serving.services.shadow import ShadowRunner

MAX_PHOTOS_PER_RETURN = 6
MAX_PHOTOS_PER_INSPECTION = 6
# Return statuses that still accept photos (approved | rejected | reviewed are final).
OPEN_STATUSES = ("awaiting_photos", "retake", "needs_review")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ReturnLensService:
    db: Database
    photos: PhotoStorage  # local folder or S3 bucket (serving.storage.photostore)
    grader: Grader  # shopper quality profile
    dock_grader: Grader  # dock quality profile (may share the ONNX session)
    policy: Policy
    clock: Callable[[], datetime] = utc_now
    # Catalog reference embeddings recomputed for a model other than the stored one,
    # keyed by (photo digest, model version). Process-local and bounded by catalog size.
    reference_cache: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Shopper photo hashes for the reused-photo check, topped up by each upload's read.
    phash_index: PhashIndex = field(default_factory=PhashIndex)
    # Copy-detection vectors (shopper and catalog reference photos), topped up likewise.
    copy_index: CopyIndex = field(default_factory=CopyIndex)
    # Helper threads for a request's I/O that can overlap its CPU work (the context read
    # while photos decode, photo-file writes while they are graded). Tasks never wait on
    # this pool themselves, so a small fixed size cannot deadlock.
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="returnlens-io"
        )
    )
    # Rendered heatmaps (serving.storage.heatmap_cache); None: beside the photo store.
    heatmaps: HeatmapCache | None = None
    # The review queue's ``teach`` order: weights and the random slice (settings).
    review_order: ReviewOrder = field(default_factory=ReviewOrder)

    # A return still waiting for its first photo after this long expires
    # (serving.services.limits; RETURNLENS_ABANDONED_AFTER_HOURS).
    abandoned_after: timedelta = timedelta(hours=72)

    # Shadow mode: the challenger graded after each shopper decision, off the request
    # path (serving.services.shadow.load_shadow sets it); None: no shadow.
    shadow: ShadowRunner | None = None

    def __post_init__(self) -> None:
        """The policy's grade/damage names must be the models' (ConfigError otherwise),
        so a mismatch stops start-up, not the first request; the policy kept is the one
        in effect for the shopper model (its card's thresholds where the YAML has none;
        the dock grader shares that model, or at least its labels)."""
        self.policy = policy_for_model(self.policy, self.grader.card)
        check_policy_fits(self.policy, self.dock_grader.card)
        if self.heatmaps is None:
            self.heatmaps = HeatmapCache(cache_root_for(self.photos.local_root))

    def now(self) -> datetime:
        """The injected clock's time as aware UTC (a naive clock is a programming error)."""
        t = self.clock()
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError("the service clock must return timezone-aware datetimes")
        return t.astimezone(UTC)

    @property
    def model_version(self) -> str:
        return self.grader.card.model_version
