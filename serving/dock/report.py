"""Showing and keeping a result: event, routing label, annotated snapshot (both modes).

In API mode the result arrives from the delivery worker (possibly after a restart, from
the spooled JPEGs); in standalone mode right after local grading. Every step logs its
failure and carries on (see ``serving.dock.output``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from serving.dock.output import EventLog, annotate, routing_label, write_bytes, write_png
from serving.dock.process import Prepared, local_result, spool_item
from serving.dock.spool import Spool, SpoolItem

log = logging.getLogger("returnlens.dock")


def heat_for(grader: Any, rgb: np.ndarray, damage_probs: dict[str, float]) -> np.ndarray | None:
    """Damage heatmap over the photo: each label's CAM weighted by its probability, max."""
    from vision.heatmap import cam_to_photo

    try:
        cams = grader.model.predict_images([rgb]).damage_cam[0]  # [D,h,w]
        labels = grader.card.damage_labels
        weights = np.array([damage_probs.get(k, 0.0) for k in labels], np.float32)
        heat = (cams * weights[:, None, None]).max(axis=0)
        peak = float(heat.max())
        heat = heat / peak if peak > 1.0 else heat
        return cam_to_photo(heat, rgb.shape[0], rgb.shape[1], grader.card.preprocess)
    except Exception:
        log.exception("heatmap failed")
        return None


class Reporter:
    """Writes ``out/labels/<key>.png``, ``out/snapshots/<key>.png`` and the result event."""

    def __init__(
        self,
        events: EventLog,
        out_dir: Path | None,
        *,
        grader: Any = None,
        save_frames: bool = False,
    ) -> None:
        self.events = events
        self.out_dir = out_dir
        self.grader = grader  # optional: only for the heatmap in API mode
        self.save_frames = save_frames

    def report(
        self,
        key: str,
        frames: tuple[bytes, ...],
        result: dict[str, Any],
        created_at: float,
        *,
        status: int | None = None,
        rgb: np.ndarray | None = None,
    ) -> None:
        latency_ms = round((time.time() - created_at) * 1000.0, 1)
        self.events(
            "result",
            key=key,
            inspection_id=result.get("inspection_id"),
            return_id=result.get("return_id"),
            status=result.get("status"),
            grade=result.get("grade"),
            tier=result.get("tier"),
            channel=result.get("channel"),
            needs_review=result.get("needs_review"),
            flags=[f.get("code") for f in result.get("flags", [])],
            http_status=status,
            latency_ms=latency_ms,
        )
        if self.out_dir is None:
            return
        write_png(self.out_dir / "labels" / f"{key}.png", routing_label(result))
        if self.save_frames:
            for i, data in enumerate(frames):
                write_bytes(self.out_dir / "frames" / key / f"frame{i}.jpg", data)
        if rgb is None and frames:
            rgb = _decode(frames[0])
        if rgb is not None:
            heat = (
                heat_for(self.grader, rgb, result.get("damage_probs") or {})
                if self.grader is not None
                else None
            )
            write_png(self.out_dir / "snapshots" / f"{key}.png", annotate(rgb, result, heat))

    def delivered(self, item: SpoolItem, result: dict[str, Any], status: int) -> None:
        """Callback of the delivery worker."""
        self.report(item.key, item.frames, result, item.created_at, status=status)


def _decode(data: bytes) -> np.ndarray | None:
    from vision.decode import decode_image

    try:
        return decode_image(data).rgb
    except Exception:
        log.exception("cannot decode a spooled frame for the snapshot")
        return None


class LocalSink:
    """Standalone mode: grade and decide on the station, store as ``delivered-local``."""

    def __init__(
        self,
        grader: Any,
        policy: Any,
        spool: Spool,
        reporter: Reporter,
        *,
        station_id: str,
        category: str,
        price: float | None,
    ) -> None:
        self.grader = grader
        self.policy = policy
        self.spool = spool
        self.reporter = reporter
        self.station_id = station_id
        self.category = category
        self.price = price

    def submit(self, prepared: Prepared) -> None:
        result = local_result(
            self.grader, self.policy, prepared, category=self.category, price=self.price
        )
        result["station_id"] = self.station_id
        self.spool.add(
            spool_item(prepared, self.station_id, status="delivered-local"), result=result
        )
        self.reporter.report(
            prepared.capture.key,
            prepared.jpegs,
            result,
            prepared.capture.created_at,
            rgb=prepared.photos[0].rgb,
        )
