"""Frame selection: the K sharpest frames of the still window, in bounded memory.

Sharpness is the variance of the Laplacian of the grey item region, shrunk to at most
``measure_width`` pixels (a 1080p frame costs ~2 ms). Only the K best frames are kept
(copies), so a long still window never holds more than K full frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the frame


def sharpness(bgr: np.ndarray, box: Box | None = None, measure_width: int = 480) -> float:
    """Variance of the Laplacian over ``box`` (the whole frame when None)."""
    region = crop(bgr, box) if box is not None else bgr
    h, w = region.shape[:2]
    if w > measure_width:
        region = cv2.resize(
            region,
            (measure_width, max(1, round(h * measure_width / w))),
            interpolation=cv2.INTER_AREA,
        )
    grey = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def pixel_box(shape: tuple[int, ...], box: Box) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    x0, y0 = max(0, int(box[0] * w)), max(0, int(box[1] * h))
    x1 = min(w, max(x0 + 1, round(box[2] * w)))
    y1 = min(h, max(y0 + 1, round(box[3] * h)))
    return x0, y0, x1, y1


def crop(bgr: np.ndarray, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = pixel_box(bgr.shape, box)
    return bgr[y0:y1, x0:x1]


def expand_box(
    box: Box,
    shape: tuple[int, ...],
    *,
    margin: float = 0.15,
    min_size: tuple[int, int] = (480, 360),
) -> Box:
    """Grow an item box by ``margin`` of its size, to at least ``min_size`` pixels (w, h).

    The dock quality profile refuses photos smaller than its resolution bound, so the
    crop never goes below it (it is clamped to the frame, keeping its size when it can).
    """
    h, w = shape[:2]
    x0, y0, x1, y1 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    bw, bh = (x1 - x0) * (1 + 2 * margin), (y1 - y0) * (1 + 2 * margin)
    bw, bh = min(w, max(bw, min_size[0])), min(h, max(bh, min_size[1]))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = min(max(0.0, cx - bw / 2), w - bw)
    top = min(max(0.0, cy - bh / 2), h - bh)
    return (left / w, top / h, (left + bw) / w, (top + bh) / h)


@dataclass
class SharpestFrames:
    """Keeps the ``k`` sharpest frames offered since the last :meth:`clear`."""

    k: int = 3
    _items: list[tuple[float, int, np.ndarray]] = field(default_factory=list)

    def offer(self, index: int, bgr: np.ndarray, box: Box | None = None) -> float:
        score = sharpness(bgr, box)
        if len(self._items) < self.k:
            self._items.append((score, index, bgr.copy()))
        else:
            worst = min(range(len(self._items)), key=lambda i: self._items[i][0])
            if score > self._items[worst][0]:
                self._items[worst] = (score, index, bgr.copy())
        return score

    def best(self) -> list[tuple[float, int, np.ndarray]]:
        """(sharpness, frame index, frame), sharpest first."""
        return sorted(self._items, key=lambda t: (-t[0], t[1]))

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
