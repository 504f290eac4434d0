"""From a triggered capture to a stored inspection (runs on the station's worker thread).

capture (K sharpest full frames) -> identify (QR / stdin / --return-id) -> crop each frame
to the item -> JPEG -> decode + dock quality gate (the same ``vision`` code the service
runs) -> keep the frames that pass (all K when none passes, so the service can flag it)
-> the sink:

* :class:`ApiSink` spools the JPEGs and wakes the delivery worker. The **service** grades
  them with its model and applies the dock policy: the stored decision has one source of
  truth. The station needs no model in this mode (it uses one, when given, only to draw
  the heatmap on the snapshot after the service answered).
* :class:`LocalSink` (``--standalone``) grades the same JPEG bytes with
  ``vision.pipeline.Grader(profile="dock")``, applies ``serving.policy.decide_disposition``
  and stores the result in the spool as ``delivered-local``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import cv2
import numpy as np

from serving.dock.identify import Identifier, Identity
from serving.dock.output import EventLog
from serving.dock.select import Box, crop, expand_box
from serving.dock.spool import Spool, SpoolItem
from vision.decode import DecodeLimits, decode_image
from vision.heatmap import encode_jpeg
from vision.model import SERVING_BATCH
from vision.quality import PROFILES, assess_quality
from vision.types import DecodedPhoto


@dataclass(frozen=True)
class Capture:
    """What the frame loop hands over when the trigger fires (K frames, sharpest first)."""

    frames: tuple[np.ndarray, ...]  # BGR full frames
    box: Box | None  # the item's box in the frame (fractions)
    frame_index: int
    created_at: float = field(default_factory=time.time)  # wall clock at the trigger
    key: str = field(default_factory=lambda: str(uuid.uuid4()))  # the idempotency key


@dataclass(frozen=True)
class Prepared:
    capture: Capture
    identity: Identity
    jpegs: tuple[bytes, ...]  # what is posted / graded, best first
    photos: tuple[DecodedPhoto, ...]
    quality_passed: tuple[bool, ...]  # per posted photo (all True when not gated here)


class Sink(Protocol):
    def submit(self, prepared: Prepared) -> None: ...


class Preparer:
    """Identify, crop, encode and (``gate=True``) gate the frames of one capture.

    Standalone mode passes ``gate=False``: its Grader runs the very same dock gate and
    aggregates only the photos that pass, so gating here too would only double the work.
    """

    def __init__(
        self,
        identifier: Identifier,
        *,
        crop_items: bool = True,
        margin: float = 0.15,
        jpeg_quality: int = 92,
        threads: int = 3,
        gate: bool = True,
    ) -> None:
        self.identifier = identifier
        self.gate = gate
        self.crop_items = crop_items
        self.margin = margin
        self.jpeg_quality = jpeg_quality
        self.thresholds = PROFILES["dock"]
        self.limits = DecodeLimits()
        # OpenCV releases the GIL: the QR search and the K frames run side by side.
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dock-prep")

    def _one(self, bgr: np.ndarray, region: Box | None) -> tuple[bytes, DecodedPhoto, bool]:
        """Crop, JPEG (what is posted), decode it back as the service will, gate it."""
        item = crop(bgr, region) if region is not None else bgr
        data = encode_jpeg(cv2.cvtColor(item, cv2.COLOR_BGR2RGB), self.jpeg_quality)
        photo = decode_image(data, limits=self.limits)
        if not self.gate:
            return data, photo, True
        return data, photo, assess_quality(photo, self.thresholds, profile="dock").passed

    def prepare(self, capture: Capture) -> Prepared:
        """QR identification runs beside the frame work (OpenCV releases the GIL)."""
        identity_job = self.pool.submit(self.identifier.identify, capture.frames, capture.box)
        region = None
        if self.crop_items and capture.box is not None:
            t = self.thresholds
            region = expand_box(
                capture.box,
                capture.frames[0].shape,
                margin=self.margin,
                min_size=(t.min_long_side, t.min_short_side),
            )
        done = list(self.pool.map(lambda bgr: self._one(bgr, region), capture.frames))
        jpegs = [d for d, _, _ in done]
        photos = [p for _, p, _ in done]
        passed = [ok for _, _, ok in done]
        keep = [i for i, ok in enumerate(passed) if ok] or list(range(len(jpegs)))
        return Prepared(
            capture,
            identity_job.result(),
            tuple(jpegs[i] for i in keep),
            tuple(photos[i] for i in keep),
            tuple(passed[i] for i in keep),
        )


def spool_item(p: Prepared, station_id: str, status: str = "pending") -> SpoolItem:
    return SpoolItem(
        key=p.capture.key,
        station_id=station_id,
        return_id=p.identity.return_id,
        id_source=p.identity.source,
        frames=p.jpegs,
        created_at=p.capture.created_at,
        meta={
            "frame_index": p.capture.frame_index,
            "box": p.capture.box,
            "quality_passed": list(p.quality_passed),
        },
        status=status,
    )


class ApiSink:
    """Spool first (durable), then wake the delivery worker."""

    def __init__(self, spool: Spool, station_id: str, events: EventLog, kick: Any = None) -> None:
        self.spool = spool
        self.station_id = station_id
        self.events = events
        self.kick = kick

    def submit(self, prepared: Prepared) -> None:
        self.spool.add(spool_item(prepared, self.station_id))
        self.events(
            "spooled",
            key=prepared.capture.key,
            return_id=prepared.identity.return_id,
            id_source=prepared.identity.source,
            frames=len(prepared.jpegs),
            frame_index=prepared.capture.frame_index,
        )
        if self.kick is not None:
            self.kick()


def local_result(
    grader: Any, policy: Any, prepared: Prepared, *, category: str, price: float | None
) -> dict[str, Any]:
    """Grade + dock disposition on the station, shaped like the API's InspectionView."""
    from serving.policy import DockContext, Scores, decide_disposition

    graded = grader.grade_decoded(list(prepared.photos))
    item = graded.item
    result: dict[str, Any] = {
        "inspection_id": f"local-{prepared.capture.key}",
        "return_id": prepared.identity.return_id,
        "status": "matched" if prepared.identity.return_id else "unmatched",
        "grade": None,
        "grade_probs": {},
        "damage_probs": {},
        "tier": None,
        "markdown": None,
        "channel": None,
        "expected_recovery": None,
        "alternatives": [],
        "flags": [],
        "needs_review": True,
        "model_version": graded.model_version,
        "policy_version": policy.version,
        "photo_ids": [],
        "created_at": datetime.now(UTC).isoformat(),
        "station_id": None,
        "id_source": prepared.identity.source,
        "photo_quality": [g.quality.passed for g in graded.photos],
    }
    if item is None:  # nothing passed the quality gate: grade the frames anyway, flag it
        item = grade_all(grader, prepared.photos)
    ctx = DockContext(
        category=category,
        price=price or 0.0,
        scores=Scores.from_item_scores(item),
        quality_passed=graded.item is not None,
    )
    d = decide_disposition(policy, ctx)
    result.update(
        grade=d.grade,
        grade_probs=item.grade_dict(),
        damage_probs=item.damage_dict(),
        tier=d.tier,
        markdown=d.markdown,
        flags=[f.to_dict() for f in d.flags],
        needs_review=d.needs_review or not prepared.identity.return_id,
    )
    if price is not None:
        # A held item (unfamiliar photo, model cannot tell) goes to a person, not a channel;
        # its priced alternatives stay for the reviewer, as on the server.
        result.update(
            channel=None if d.held else d.channel,
            expected_recovery=None if d.held else round(d.expected_recovery, 2),
            alternatives=[_option(o) for o in d.alternatives],
        )
    return result


def grade_all(grader: Any, photos: Sequence[DecodedPhoto]) -> Any:
    from vision.aggregate import aggregate

    card = grader.card
    outputs = grader.model.predict_images([p.rgb for p in photos], SERVING_BATCH)
    return aggregate(
        [outputs.photo(i) for i in range(len(photos))], card.grade_labels, card.damage_labels
    )


def _option(o: Any) -> dict[str, Any]:
    return {
        "channel": o.channel,
        "eligible": o.eligible,
        "markdown": round(o.markdown, 4),
        "cost": o.cost,
        "expected_recovery": round(o.expected_recovery, 2),
    }
