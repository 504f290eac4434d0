"""What the operator gets: an event log, an annotated snapshot and a printable routing label.

Output is a side effect of an inspection, never a condition for it: every writer here
logs its failure and returns None (a full disk must not stop grading or delivery).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.fsio import atomic_write_bytes

log = logging.getLogger("returnlens.dock")
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def qr_matrix(text: str, border: int = 2) -> np.ndarray:
    """QR code modules as a bool matrix (True = dark) with a quiet zone of ``border``."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    code = qrcode.QRCode(border=border, box_size=1, error_correction=ERROR_CORRECT_M)
    code.add_data(text)
    code.make(fit=True)
    return np.array(code.get_matrix(), dtype=bool)


def qr_image(text: str, module_px: int, border: int = 2) -> np.ndarray:
    """A black-on-white QR code as an RGB uint8 image, ``module_px`` pixels per module."""
    mods = qr_matrix(text, border)
    grey = np.where(mods, 0, 255).astype(np.uint8)
    grey = np.kron(grey, np.ones((module_px, module_px), np.uint8))
    return np.repeat(grey[:, :, None], 3, axis=2)


class EventLog:
    """Append-only JSON lines (one event a line, flushed), shared by the station threads."""

    def __init__(
        self, path: Path | None, *, echo: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.path = path
        self.echo = echo  # e.g. a console printer for the operator
        self.records: deque[dict[str, Any]] = deque(maxlen=256)  # recent events, bounded
        self._lock = threading.Lock()
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError:
                log.exception("cannot create the folder of the event log %s", path)

    def __call__(self, kind: str, **fields: Any) -> None:
        record = {"at": round(time.time(), 3), "event": kind, **fields}
        line = json.dumps(record, default=str, sort_keys=False)
        with self._lock:
            self.records.append(record)
            if self.echo is not None:
                try:
                    self.echo(record)
                except Exception:
                    log.exception("event echo failed")
            if self.path is None:
                return
            try:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
            except OSError:
                log.exception("cannot write the event log %s", self.path)


def _text(
    img: np.ndarray,
    text: str,
    org: tuple[int, int],
    scale: float,
    color: tuple[int, int, int] = (0, 0, 0),
    thickness: int = 2,
) -> None:
    cv2.putText(img, text, org, _FONT, scale, color, thickness, cv2.LINE_AA)


def summary_lines(result: dict[str, Any]) -> list[str]:
    rid = result.get("return_id") or result.get("claimed_return_id") or "UNMATCHED"
    grade = result.get("grade") or "ungraded"
    tier = result.get("tier") or "-"
    channel = result.get("channel") or "review"
    lines = [f"return {rid}", f"grade {grade}  tier {tier}", f"channel {channel}"]
    if result.get("needs_review"):
        lines.append("NEEDS REVIEW")
    return lines


def annotate(rgb: np.ndarray, result: dict[str, Any], heat: np.ndarray | None) -> np.ndarray:
    """The item photo with the damage heatmap (if any) and a banner of the result."""
    from vision.heatmap import render_overlay

    img = render_overlay(rgb, heat) if heat is not None else rgb.copy()
    lines = summary_lines(result)
    scale = max(0.5, img.shape[1] / 1100)
    step = int(34 * scale) + 6
    banner = np.full((step * len(lines) + 12, img.shape[1], 3), 255, np.uint8)
    for i, line in enumerate(lines):
        _text(banner, line, (10, step * (i + 1)), scale)
    return np.vstack([banner, img])


def routing_label(result: dict[str, Any], *, width: int = 812, height: int = 1218) -> np.ndarray:
    """A 4 x 6 inch label at 203 dpi: return id, grade, tier, channel, QR of the inspection."""
    img = np.full((height, width, 3), 255, np.uint8)
    rid = result.get("return_id") or result.get("claimed_return_id") or "UNMATCHED"
    rows = [
        ("RETURN", str(rid)),
        ("GRADE", str(result.get("grade") or "-")),
        ("TIER", str(result.get("tier") or "-")),
        ("CHANNEL", str(result.get("channel") or "review").upper()),
    ]
    y = 90
    for label, value in rows:
        _text(img, label, (40, y), 0.9, (90, 90, 90), 2)
        _text(img, value, (40, y + 62), 1.6 if len(value) < 20 else 1.0, (0, 0, 0), 4)
        y += 150
    if result.get("needs_review"):
        _text(img, "NEEDS REVIEW", (40, y), 1.4, (0, 0, 0), 4)
    inspection_id = str(result.get("inspection_id") or "")
    if inspection_id:
        mods = qr_matrix(inspection_id).shape[0]
        qr = qr_image(inspection_id, max(4, min(12, 460 // mods)))
        top, left = height - qr.shape[0] - 70, (width - qr.shape[1]) // 2
        img[top : top + qr.shape[0], left : left + qr.shape[1]] = qr
        _text(img, inspection_id[:40], (40, height - 30), 0.7, (0, 0, 0), 2)
    cv2.rectangle(img, (8, 8), (width - 9, height - 9), (0, 0, 0), 3)
    return img


def write_png(path: Path, rgb: np.ndarray) -> Path | None:
    """Atomic PNG write; returns None (logged) on failure."""
    from vision.heatmap import encode_png

    try:
        data = encode_png(rgb)
    except (ValueError, cv2.error):
        log.exception("cannot encode %s", path)
        return None
    return write_bytes(path, data)


def write_bytes(path: Path, data: bytes) -> Path | None:
    """Atomic write (a label printer or viewer never reads half a file); None on failure."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        return path
    except OSError:
        log.exception("cannot write %s", path)
        return None
