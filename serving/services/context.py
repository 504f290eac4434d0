"""What every service function needs: storage, the graders, the policy and the clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from serving.policy import Policy
from serving.services.phash_index import PhashIndex
from serving.storage.db import Database
from serving.storage.photostore import PhotoStore
from vision.pipeline import Grader

MAX_PHOTOS_PER_RETURN = 6
MAX_PHOTOS_PER_INSPECTION = 6
# Return statuses that still accept photos (approved | rejected | reviewed are final).
OPEN_STATUSES = ("awaiting_photos", "retake", "needs_review")


@dataclass
class Deps:
    db: Database
    photos: PhotoStore
    grader: Grader  # shopper quality profile
    dock_grader: Grader  # dock quality profile (may share the ONNX session)
    policy: Policy
    clock: Callable[[], datetime]
    # Catalog reference embeddings recomputed for a model other than the stored one,
    # keyed by (photo digest, model version). Process-local and bounded by catalog size.
    reference_cache: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Shopper photo hashes for the reused-photo check, topped up by each upload's read.
    phash_index: PhashIndex = field(default_factory=PhashIndex)
    # Helper threads for a request's I/O that can overlap its CPU work (the context read
    # while photos decode, photo-file writes while they are graded). Tasks never wait on
    # this pool themselves, so a small fixed size cannot deadlock.
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="returnlens-io"
        )
    )

    def now(self) -> datetime:
        """The injected clock's time as aware UTC (a naive clock is a programming error)."""
        t = self.clock()
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError("the service clock must return timezone-aware datetimes")
        return t.astimezone(UTC)

    @property
    def model_version(self) -> str:
        return self.grader.card.model_version
