"""Frame sources that survive disconnects: camera index, RTSP/HTTP stream, video file, folder.

A dock camera is on a cable or a network that fails. :class:`ResilientSource` wraps a
*reader opener*: when a read fails (or the source cannot be opened) it closes the reader,
waits with capped exponential backoff and opens it again, resuming at the frame position
it had reached (files and folders) or at "now" (cameras and streams). It never gives up
on a live source; the caller stops it. A video file or folder that reaches its real end
stops cleanly unless ``loop`` is set.

Frames are BGR ``uint8`` arrays, as OpenCV delivers them.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from vision.errors import ConfigError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
STREAM_TIMEOUT_MS = 5000
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class SourceFailure(Exception):
    """A read or open failed; the resilient wrapper reconnects."""


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff: ``initial * factor**attempt``, at most ``maximum``.

    :meth:`delay` is the deterministic ceiling (a camera reconnect uses it as is: one
    station, one camera, nobody to collide with). :meth:`full_jitter` draws uniformly
    below it, the "full jitter" scheme of AWS's backoff study: when one API comes back
    after an outage, a fleet of dock stations that failed together spread their retries
    over the window instead of arriving in synchronised waves.
    """

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0

    def delay(self, attempt: int) -> float:
        return float(min(self.maximum, self.initial * self.factor ** max(0, attempt)))

    def full_jitter(self, attempt: int, rng: random.Random) -> float:
        """A uniform draw from ``[0, delay(attempt)]``; pass a seeded ``rng`` in tests."""
        return rng.uniform(0.0, self.delay(attempt))


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # camera | stream | file | folder
    target: str | int

    @property
    def finite(self) -> bool:
        return self.kind in ("file", "folder")


@dataclass(frozen=True)
class Frame:
    index: int  # position in the source (frames since the start, across reconnects)
    image: np.ndarray  # BGR uint8


class Reader(Protocol):
    fps: float | None

    def read(self) -> np.ndarray | None:
        """The next frame; None at the real end of a finite source; SourceFailure on error."""

    def close(self) -> None: ...


def parse_source(spec: str) -> SourceSpec:
    """Camera index ("0"), stream URL ("rtsp://..."), folder of frames, or video file."""
    text = spec.strip()
    if text.isdigit():
        return SourceSpec("camera", int(text))
    if _URL.match(text):
        return SourceSpec("stream", text)
    path = Path(text)
    if path.is_dir():
        return SourceSpec("folder", str(path))
    if path.is_file():
        return SourceSpec("file", str(path))
    raise ConfigError(
        f"source {spec!r} is not a camera index, a stream URL, a video file or a folder of frames",
        code="invalid_source",
    )


class CaptureReader:
    """cv2.VideoCapture over a camera index, stream URL or video file."""

    def __init__(
        self, spec: SourceSpec, position: int = 0, timeout_ms: int = STREAM_TIMEOUT_MS
    ) -> None:
        self.spec = spec
        if spec.kind == "stream":  # a dead stream must fail a read, not hang it forever
            self.cap = cv2.VideoCapture(
                str(spec.target),
                cv2.CAP_ANY,
                [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                    timeout_ms,
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                    timeout_ms,
                ],
            )
        else:
            self.cap = cv2.VideoCapture(spec.target)
        if not self.cap.isOpened():
            self.cap.release()
            raise SourceFailure(f"cannot open {spec.kind} {spec.target!r}")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else None
        self.count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if spec.finite else 0
        self.position = 0
        if spec.finite and position > 0:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, position)
            self.position = position

    def read(self) -> np.ndarray | None:
        ok, frame = self.cap.read()
        if ok and frame is not None:
            self.position += 1
            return frame
        if self.spec.finite and (self.count <= 0 or self.position >= self.count - 1):
            return None  # the real end of the file
        raise SourceFailure(f"read failed at frame {self.position} of {self.spec.target!r}")

    def close(self) -> None:
        self.cap.release()


class FolderReader:
    """Image files of a folder in name order; a vanished folder or bad file is a failure."""

    def __init__(self, folder: str | Path, position: int = 0, fps: float | None = None) -> None:
        self.folder = Path(folder)
        try:
            self.files = sorted(
                p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
            )
        except OSError as exc:
            raise SourceFailure(f"cannot list {self.folder}: {exc}") from exc
        self.position = position
        self.fps = fps

    def read(self) -> np.ndarray | None:
        if self.position >= len(self.files):
            return None
        frame = cv2.imread(str(self.files[self.position]), cv2.IMREAD_COLOR)
        if frame is None:
            raise SourceFailure(f"cannot read {self.files[self.position]}")
        self.position += 1
        return frame

    def close(self) -> None:
        return None


def open_reader(spec: SourceSpec, position: int = 0) -> Reader:
    if spec.kind == "folder":
        return FolderReader(str(spec.target), position)
    return CaptureReader(spec, position)


Opener = Callable[[int], Reader]  # position -> reader
EventFn = Callable[..., None]


class ResilientSource:
    """Iterate frames forever (live) or to the end (file/folder); reconnect on failure."""

    def __init__(
        self,
        opener: Opener,
        *,
        finite: bool,
        loop: bool = False,
        backoff: Backoff | None = None,
        sleep: Callable[[float], object] | None = None,
        on_event: EventFn | None = None,
        max_reconnects: int | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.opener = opener
        self.finite = finite
        self.loop = loop
        self.backoff = backoff or Backoff()
        self._stop = stop or threading.Event()
        self.sleep = sleep or self._stop.wait
        self.on_event = on_event or (lambda kind, **fields: None)
        self.max_reconnects = max_reconnects
        self.fps: float | None = None
        self.reconnects = 0
        self.delays: list[float] = []  # every backoff wait, in order (observable schedule)

    @classmethod
    def from_spec(cls, spec: SourceSpec, **kwargs: object) -> ResilientSource:
        return cls(lambda pos: open_reader(spec, pos), finite=spec.finite, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        self._stop.set()

    def _open(self, position: int, failures: int) -> tuple[Reader | None, int]:
        while not self._stop.is_set():
            if failures:
                if self.max_reconnects is not None and self.reconnects >= self.max_reconnects:
                    self.on_event("source_gave_up", reconnects=self.reconnects)
                    return None, failures
                delay = self.backoff.delay(failures - 1)
                self.delays.append(delay)
                self.on_event("source_backoff", delay_s=delay, attempt=failures)
                self.sleep(delay)
                self.reconnects += 1
            try:
                reader = self.opener(position)
            except SourceFailure as exc:
                failures += 1
                self.on_event("source_open_failed", error=str(exc), attempt=failures)
                continue
            if reader.fps:
                self.fps = reader.fps
            if failures:
                self.on_event("source_reconnected", position=position, attempt=failures)
            return reader, failures
        return None, failures

    def frames(self) -> Generator[Frame, None, None]:
        """Frames in order; ``Frame.index`` counts every frame yielded (across loops)."""
        index, position = 0, 0  # position: resume point within this pass of the source
        reader, failures = self._open(position, 0)
        try:
            while reader is not None and not self._stop.is_set():
                try:
                    image = reader.read()
                except SourceFailure as exc:
                    reader.close()
                    self.on_event("source_read_failed", error=str(exc), position=position)
                    reader, failures = self._open(position, failures + 1)
                    continue
                if image is None:  # the real end of a file or folder
                    reader.close()
                    reader = None
                    if not (self.finite and self.loop):
                        self.on_event("source_ended", frames=index)
                        return
                    position = 0
                    self.on_event("source_looped", frames=index)
                    reader, failures = self._open(position, 0)
                    continue
                failures = 0
                yield Frame(index, image)
                index += 1
                position += 1
        finally:
            if reader is not None:
                reader.close()
