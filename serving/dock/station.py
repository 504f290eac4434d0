"""The watch loop: frames in, one inspection per placed item out.

Two threads, so a slow API or a slow model never stalls the camera:

* the **frame loop** (caller's thread) reads the source, updates the presence trigger and
  offers still frames to the K-sharpest selector. When the trigger fires it hands a
  :class:`~serving.dock.process.Capture` (K frames) to a bounded queue. It does nothing
  else per frame, so it keeps up with the camera.
* the **worker** identifies, crops, gates and submits each capture to the sink (spool +
  delivery in API mode, local grading in standalone mode).

Memory is bounded: the selector holds K frames, the queue ``queue_size`` captures; when
the queue is full the frame loop waits (a live camera drops frames meanwhile; nothing
already captured is lost). The delivery worker (API mode) is a third thread owned by
the caller (see ``serving.commands.dock``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from serving.dock.output import EventLog
from serving.dock.process import Capture, Preparer, Sink
from serving.dock.select import SharpestFrames
from serving.dock.source import ResilientSource
from serving.dock.trigger import PresenceTrigger

log = logging.getLogger("returnlens.dock")


@dataclass(frozen=True)
class StationStats:
    frames: int
    inspections: int
    seconds: float
    errors: int

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class Worker:
    """Runs prepare + submit for each capture on its own thread; errors are logged, counted."""

    def __init__(
        self, preparer: Preparer, sink: Sink, events: EventLog, queue_size: int = 4
    ) -> None:
        self.preparer = preparer
        self.sink = sink
        self.events = events
        self.queue: queue.Queue[Capture | None] = queue.Queue(maxsize=queue_size)
        self.errors = 0
        self.done = 0
        self._thread = threading.Thread(target=self._run, name="dock-worker", daemon=True)

    def start(self) -> Worker:
        self._thread.start()
        return self

    def put(self, capture: Capture) -> None:
        if self.queue.full():
            self.events("backpressure", key=capture.key, queued=self.queue.qsize())
        self.queue.put(capture)

    def _run(self) -> None:
        while True:
            capture = self.queue.get()
            if capture is None:
                return
            try:
                self.sink.submit(self.preparer.prepare(capture))
                self.done += 1
            except Exception as exc:  # one bad capture must not stop the station
                self.errors += 1
                log.exception("inspection %s failed", capture.key)
                self.events(
                    "inspection_error", key=capture.key, error=f"{type(exc).__name__}: {exc}"
                )

    def close(self) -> None:
        self.queue.put(None)
        self._thread.join()


class Station:
    """Frame loop over a resilient source; see the module docstring."""

    def __init__(
        self,
        source: ResilientSource,
        trigger: PresenceTrigger,
        worker: Worker,
        events: EventLog,
        *,
        k: int = 3,
        on_frame: Callable[[int], None] | None = None,
    ) -> None:
        self.source = source
        self.trigger = trigger
        self.worker = worker
        self.events = events
        self.selector = SharpestFrames(k)
        self.on_frame = on_frame
        self.inspections = 0

    def run(self, max_frames: int | None = None) -> StationStats:
        start = time.perf_counter()
        frames = 0
        stream = self.source.frames()
        try:
            for frame in stream:
                self.step(frame.index, frame.image)
                frames += 1
                if self.on_frame is not None:
                    self.on_frame(frame.index)
                if max_frames is not None and frames >= max_frames:
                    break
        finally:
            stream.close()  # releases the camera / file now, not at garbage collection
        seconds = time.perf_counter() - start
        return StationStats(frames, self.inspections, seconds, self.worker.errors)

    def step(self, index: int, image: np.ndarray) -> bool:
        """One frame: update the trigger, keep still frames, hand over on firing."""
        update = self.trigger.update(image)
        if not update.still:
            self.selector.clear()
            return False
        self.selector.offer(index, image, update.bbox)
        if not update.fired:
            return False
        best = self.selector.best()
        capture = Capture(frames=tuple(f for _, _, f in best), box=update.bbox, frame_index=index)
        self.selector.clear()
        self.inspections += 1
        self.events(
            "triggered",
            key=capture.key,
            frame_index=index,
            foreground=round(update.foreground, 4),
            sharpness=[round(s, 1) for s, _, _ in best],
        )
        self.worker.put(capture)
        return True
