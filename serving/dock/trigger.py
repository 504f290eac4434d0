"""Presence trigger: one inspection per item placed on the dock table.

Every frame is shrunk to a small, blurred colour image (``work_width`` pixels wide) and
compared with two things:

* the **background** (the empty table, a running average learned only while the table
  is empty): pixels that differ are *foreground*;
* the **previous frame**: pixels that changed are *motion*.

Both comparisons first divide out the global brightness ratio (per-channel median of
the ratio), so lighting flicker and slow daylight drift are neither motion nor
foreground, while an item (a local change) is.

State machine::

    EMPTY --(motion or foreground)--> ARRIVING
    ARRIVING --(still for still_frames and foreground >= min_item_fraction)--> INSPECTED
        fires exactly one inspection
    ARRIVING --(no foreground for empty_frames)--> EMPTY     a hand passed, nothing left
    INSPECTED --(no foreground for empty_frames)--> EMPTY    item removed: re-armed

A hand moves, and an arm reaching in always crosses the frame border, so neither makes
the scene "still with an item" (foreground touching the border counts as motion); when
the hand leaves, either nothing is left (back to EMPTY, no inspection) or the item it put
down is (still -> inspection). Items must therefore rest inside the field of view. Moving
an inspected item does not fire again: only its removal re-arms the trigger.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

from vision.errors import ConfigError


class State(StrEnum):
    EMPTY = "empty"
    ARRIVING = "arriving"
    INSPECTED = "inspected"


@dataclass(frozen=True)
class TriggerConfig:
    """Thresholds and timings; timings are in frames (the CLI converts seconds with the fps)."""

    work_width: int = 160  # analysis width in pixels
    blur: int = 5  # Gaussian kernel on the analysis image (odd)
    diff_threshold: float = 30.0  # per-channel difference (0..255) that counts as changed
    motion_fraction: float = 0.003  # changed share of pixels between frames that is motion
    min_item_fraction: float = 0.01  # foreground share that is an item (not noise)
    still_frames: int = 8  # consecutive still frames with an item before inspecting
    empty_frames: int = 6  # consecutive frames without foreground to re-arm
    background_alpha: float = 0.05  # running-average rate while the table is empty
    max_border_fraction: float = 0.004  # foreground share of the frame border still "clear"

    def __post_init__(self) -> None:
        if self.work_width < 32 or self.blur < 1 or self.blur % 2 == 0:
            raise ConfigError("trigger work_width must be >= 32 and blur an odd number >= 1")
        if self.still_frames < 1 or self.empty_frames < 1:
            raise ConfigError("trigger still_frames and empty_frames must be >= 1")
        for name in (
            "motion_fraction",
            "min_item_fraction",
            "background_alpha",
            "max_border_fraction",
        ):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"trigger {name} must be between 0 and 1")


@dataclass(frozen=True)
class TriggerUpdate:
    state: State
    fired: bool  # this frame starts an inspection
    still: bool  # the scene is still and holds an item (a candidate frame for selection)
    foreground: float  # share of pixels that differ from the empty table
    motion: float  # share of pixels that changed since the previous frame
    bbox: tuple[float, float, float, float] | None  # foreground box (x0, y0, x1, y1), 0..1


def _gain(cur: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-channel global brightness ratio cur/ref (median: robust to a local item)."""
    ratio = cur.reshape(-1, 3) / np.maximum(ref.reshape(-1, 3), 1.0)
    return np.median(ratio, axis=0).astype(np.float32)


def _changed(cur: np.ndarray, ref: np.ndarray, threshold: float) -> np.ndarray:
    diff = np.abs(cur - ref * _gain(cur, ref))
    return np.asarray(diff.max(axis=2) > threshold)


class PresenceTrigger:
    """Feed every frame to :meth:`update`; it says when to inspect. Not thread-safe."""

    def __init__(self, config: TriggerConfig | None = None) -> None:
        self.config = config or TriggerConfig()
        self.state = State.EMPTY
        self._bg: np.ndarray | None = None
        self._prev: np.ndarray | None = None
        self._still = 0
        self._absent = 0
        self._kernel = np.ones((3, 3), np.uint8)
        self.fired_count = 0

    def _small(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        width = self.config.work_width
        height = max(8, round(h * width / w))
        small = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        k = self.config.blur
        return cv2.GaussianBlur(small, (k, k), 0).astype(np.float32)

    def update(self, frame: np.ndarray) -> TriggerUpdate:
        cfg = self.config
        small = self._small(frame)
        if self._bg is None or self._prev is None or self._bg.shape != small.shape:
            self._bg, self._prev = small, small
            return TriggerUpdate(self.state, False, False, 0.0, 0.0, None)
        fg_mask = cv2.morphologyEx(
            _changed(small, self._bg, cfg.diff_threshold).astype(np.uint8),
            cv2.MORPH_OPEN,
            self._kernel,
        )
        fg = float(fg_mask.mean())
        motion = float(_changed(small, self._prev, cfg.diff_threshold).mean())
        self._prev = small
        present = fg >= cfg.min_item_fraction
        # An arm always crosses the frame border; a placed item does not.
        moving = motion >= cfg.motion_fraction or _border(fg_mask) > cfg.max_border_fraction
        fired, still = self._step(present, moving)
        if self.state is State.EMPTY and not present:
            self._bg += cfg.background_alpha * (small - self._bg)
        return TriggerUpdate(
            self.state, fired, still, fg, motion, _bbox(fg_mask) if present else None
        )

    def _step(self, present: bool, moving: bool) -> tuple[bool, bool]:
        """Advance the state machine; returns (fired, still-with-item)."""
        cfg = self.config
        self._absent = 0 if present else self._absent + 1
        if self.state is State.EMPTY:
            if present or moving:
                self.state, self._still = State.ARRIVING, 0
            return False, False
        if self.state is State.ARRIVING:
            self._still = 0 if moving else self._still + 1
            if self._absent >= cfg.empty_frames:
                self.state = State.EMPTY
                return False, False
            still = present and self._still > 0
            if still and self._still >= cfg.still_frames:
                self.state = State.INSPECTED
                self.fired_count += 1
                return True, True
            return False, still
        if self._absent >= cfg.empty_frames:  # INSPECTED: re-arm once the item is gone
            self.state = State.EMPTY
        return False, False


def _border(mask: np.ndarray) -> float:
    """Foreground share of the one-pixel frame border."""
    ring = np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]])
    return float(ring.mean())


def _bbox(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    h, w = mask.shape
    return (
        float(xs.min()) / w,
        float(ys.min()) / h,
        float(xs.max() + 1) / w,
        float(ys.max() + 1) / h,
    )
