"""The worker (``returnlens jobs worker``) and the service's outbox nudger.

``run_worker`` runs huey's consumer (``workers`` threads) in the calling thread until
SIGINT (graceful: the jobs in flight finish) or SIGTERM, beside a ``Sweeper`` thread
that calls ``JobQueue.sweep`` at once and every ``RETURNLENS_JOB_SWEEP_SECONDS``: a
worker started after another was killed puts the lost work back within its first
second. ``OutboxNudger`` is the service's side (``RETURNLENS_JOBS_OUTBOX``): a thread
woken after each commit that emitted an outbox event, which enqueues one delivery job,
off the request path; a nudge that fails is logged, and the next sweep finds the event.
"""

from __future__ import annotations

import logging
import threading

from serving.services.jobs.queue import JobQueue
from serving.services.outbox.events import add_waker, remove_waker

log = logging.getLogger("returnlens.jobs")


class _Loop:
    """A daemon thread calling ``step`` every ``interval_s`` (and at once when woken)."""

    name = "returnlens-jobs"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> _Loop:
        self._thread.start()
        return self

    def step(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.step()
            except Exception:  # database or queue down: try again next time
                log.exception("%s failed; retrying in %.0f s", self.name, self.interval_s)
            self._wake.wait(self.interval_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)


class Sweeper(_Loop):
    name = "returnlens-jobs-sweep"

    def __init__(self, queue: JobQueue) -> None:
        super().__init__(queue.settings.job_sweep_seconds)
        self.queue = queue

    def step(self) -> None:
        enqueued = self.queue.sweep()
        if enqueued:
            log.info("sweep enqueued %s", ", ".join(enqueued))


class OutboxNudger(_Loop):
    """Enqueues ``deliver-outbox`` after an outbox event commits in this process (a burst
    of commits gives one job while it waits). Deliveries that come due later (a retry's
    backoff) are the workers' sweep's to find."""

    name = "returnlens-jobs-nudge"

    def __init__(self, queue: JobQueue) -> None:
        super().__init__(queue.settings.outbox_poll_seconds)
        self.queue = queue

    def start(self) -> OutboxNudger:
        add_waker(self._wake)
        super().start()
        return self

    def step(self) -> None:
        self.queue.nudge("deliver-outbox")

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.step()
            except Exception:  # the queue is down: the sweep finds the event later
                log.exception("could not enqueue an outbox delivery job")

    def stop(self, timeout: float = 10.0) -> None:
        remove_waker(self._wake)
        super().stop(timeout)


def run_worker(queue: JobQueue, workers: int = 1) -> None:
    """Consume jobs until a signal stops the consumer."""
    consumer = queue.huey.create_consumer(
        workers=workers,
        worker_type="thread",
        periodic=False,
        initial_delay=0.05,
        max_delay=queue.settings.job_poll_s,
        check_worker_health=True,
    )
    sweeper = Sweeper(queue).start()
    try:
        consumer.run()
    finally:
        sweeper.stop()
