"""Which return is this? The QR code on the parcel label, else an id typed or scanned in.

Order of evidence:

1. OpenCV's QR detectors on each selected frame: the item region first (the label is
   stuck to the parcel; a crop is several times faster than a 1080p frame), then that
   region upscaled 2x (a small label decodes once enlarged), then the full frame. On
   each image the classic ``cv2.QRCodeDetector`` goes first and
   ``cv2.QRCodeDetectorAruco`` second: the classic one misses about one small, slightly
   blurred label in twenty on the simulated dock (the return id is random, so which one
   varies), and the ArUco-based finder reads those.
2. An id read from stdin (a keyboard or a USB barcode scanner types a line) by a daemon
   reader thread into a small bounded queue; the worker takes the latest one typed since
   the previous inspection without blocking the camera loop (optionally waiting ``wait``
   seconds for the operator). Typed ids never carry over to a later item.
3. ``--return-id`` given on the command line.
4. Nothing: the item is still graded and stored as ``unmatched`` for review.

A return id is 1-64 characters of letters, digits and ``_.:-``; anything else in a QR
code (a URL, a shipping barcode) is not taken as a return id.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TextIO

import cv2
import numpy as np

from serving.dock.select import Box, expand_box, pixel_box

RETURN_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True)
class Identity:
    return_id: str | None
    source: str  # qr | stdin | cli | none


def clean_id(text: str | None) -> str | None:
    text = (text or "").strip()
    return text if RETURN_ID.match(text) else None


class QrReader:
    """OpenCV's two QR detectors with an upscaled retry on the item region."""

    def __init__(self, upscale: float = 2.0) -> None:
        self.detectors = (cv2.QRCodeDetector(), cv2.QRCodeDetectorAruco())
        self.upscale = upscale

    def _decode(self, bgr: np.ndarray) -> str | None:
        for detector in self.detectors:
            try:
                text, _, _ = detector.detectAndDecode(bgr)
            except cv2.error:
                continue
            found = clean_id(text)
            if found:
                return found
        return None

    def read(self, bgr: np.ndarray, box: Box | None = None) -> str | None:
        """The item region first (the label travels with the item: small and fast), then
        that region upscaled, then the whole frame."""
        if box is not None:
            region = expand_box(box, bgr.shape, margin=0.2, min_size=(64, 64))
            x0, y0, x1, y1 = pixel_box(bgr.shape, region)
            roi = bgr[y0:y1, x0:x1]
            if roi.size:
                found = self._decode(roi)
                if found:
                    return found
                big = cv2.resize(
                    roi, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_CUBIC
                )
                found = self._decode(big)
                if found:
                    return found
        return self._decode(bgr)

    def read_any(self, frames: Iterable[np.ndarray], box: Box | None = None) -> str | None:
        for frame in frames:
            found = self.read(frame, box)
            if found:
                return found
        return None


class StdinIds:
    """Lines typed or scanned into the console, read by a daemon thread (never blocks)."""

    def __init__(self, stream: TextIO, maxsize: int = 8) -> None:
        self._queue: queue.Queue[str] = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(
            target=self._run, args=(stream,), daemon=True, name="dock-stdin"
        )
        self.rejected: list[str] = []

    def start(self) -> StdinIds:
        self._thread.start()
        return self

    def _run(self, stream: TextIO) -> None:
        for line in stream:
            self.put(line)

    def put(self, line: str) -> None:
        value = clean_id(line)
        if value is None:
            if line.strip():
                self.rejected.append(line.strip()[:80])
            return
        while True:  # bounded: the oldest unused id gives way to the newest
            try:
                self._queue.put_nowait(value)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()

    def drain(self) -> str | None:
        """The latest id typed since the last call (older ones were for earlier items)."""
        latest = None
        while True:
            try:
                latest = self._queue.get_nowait()
            except queue.Empty:
                return latest

    def take(self, wait: float = 0.0) -> str | None:
        try:
            return self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None


class Identifier:
    """QR first, then stdin, then the command-line id, else unmatched."""

    def __init__(
        self,
        *,
        qr: QrReader | None = None,
        stdin: StdinIds | None = None,
        cli_id: str | None = None,
        wait: float = 0.0,
    ) -> None:
        self.qr = qr or QrReader()
        self.stdin = stdin
        self.cli_id = clean_id(cli_id)
        self.wait = wait

    def identify(self, frames: Sequence[np.ndarray], box: Box | None = None) -> Identity:
        found = self.qr.read_any(frames, box)
        # Ids typed since the previous inspection belong to this item; a readable label
        # wins, and they are dropped either way so they never stick to a later item.
        typed = self.stdin.drain() if self.stdin is not None else None
        if found:
            return Identity(found, "qr")
        if typed is None and self.stdin is not None and self.wait > 0:
            typed = self.stdin.take(self.wait)
        if typed:
            return Identity(typed, "stdin")
        if self.cli_id:
            return Identity(self.cli_id, "cli")
        return Identity(None, "none")
