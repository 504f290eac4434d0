"""Background jobs: a huey queue (SQLite by default, PostgreSQL or Redis) and its worker.

What runs: ``deliver-outbox`` (one delivery pass of the notification outbox,
``serving.services.outbox``), ``expire-returns`` (``serving.services.limits``) and
``export-reviewed`` (the reviewed-label export, ``serving.storage.review_export``).
``returnlens jobs worker`` consumes them; ``returnlens jobs enqueue NAME`` adds one;
``returnlens jobs list`` and ``GET /v1/admin/jobs`` show each job's state (table
``jobs``, written from the queue's signals: ``queue``).

**A job is a wake-up over durable state, never the state itself.** The queue deletes a
task when a worker takes it, so a worker killed mid-job loses it. That is harmless here:
the work a job does is recorded in the application database, and running a job twice is
a no-op. The outbox's delivery rows are the source of truth for events (claimed with a
lease, marked delivered; receivers dedupe on the event id); an abandoned return is a
``returns`` row still ``awaiting_photos`` and expiring it twice expires it once; an
export writes its files atomically to the same place from the same rows. Each worker
runs a sweep (``sweep``, at start and every ``RETURNLENS_JOB_SWEEP_SECONDS``) that
enqueues whatever durable work is still due: outbox deliveries past their next attempt,
abandoned returns, and jobs whose run ended without an outcome (``running`` past their
lease, or ``interrupted``), again under their own id. Failing jobs are retried
``RETURNLENS_JOB_RETRIES`` times, ``RETURNLENS_JOB_RETRY_DELAY_S`` apart; after the
last the row is ``failed`` with its error and stays listed.
"""

from serving.services.jobs.queue import JOB_NAMES, JobQueue, open_queue

__all__ = ["JOB_NAMES", "JobQueue", "open_queue"]
