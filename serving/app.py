"""The FastAPI application factory.

``create_app(settings)`` wires the routers, the JSON error handlers and three pure ASGI
middlewares (outermost first): request metrics, the rate limiter, the body-size cap.
Its lifespan builds the runtime once per process in a worker thread: migrate the
database, load the ONNX model (one session, shared by the shopper and dock graders),
warm it up, load and check the policy. Only then does ``/readyz`` turn 200. It also runs
the notification outbox's dispatcher thread (``serving.services.outbox``) until shutdown.

``uvicorn serving.app:create_app --factory`` works too; settings then come from the
``RETURNLENS_*`` environment (``returnlens serve`` starts its workers the same way,
through ``serving.asgi:create_app``, which orders their imports).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import FastAPI
from limits.storage import Storage

from serving.api import admin, dock, labels, meta, ops, outbox, returns, review, shadow, staff
from serving.api import jobs as jobs_api
from serving.api.admission import UploadAdmission, UploadSlots
from serving.api.bodylimit import BodyLimitMiddleware
from serving.api.docs import install_docs
from serving.api.uploads import keep_photos_in_memory
from serving.api.urlcheck import NulInUrlMiddleware
from serving.auth import Authenticator
from serving.deadlines import configure as configure_deadlines
from serving.errors import install_error_handlers
from serving.metrics import Metrics, MetricsMiddleware
from serving.ratelimit import RateLimiter, RateLimitMiddleware, open_storage, rule
from serving.services.admin import model_info
from serving.services.drift import drift_gauges
from serving.services.familiarity import unfamiliarity_status
from serving.services.review_order import ReviewOrder
from serving.services.service import ReturnLensService
from serving.services.shadow import load_shadow
from serving.settings import Settings
from serving.storage.heatmap_cache import HeatmapCache, cache_root_for
from serving.web import router as web_router

if TYPE_CHECKING:
    from serving.services.jobs import JobQueue
    from serving.services.jobs.worker import OutboxNudger
    from serving.services.outbox.worker import OutboxWorker
    from serving.storage.db import Database

log = logging.getLogger("returnlens.app")

DESCRIPTION = """\
Grade returned items from photos.

* **Shoppers** open a return (order id + email), upload 1-6 photos with the return's
  token and get an instant decision: approved, retake (with the reason), needs_review
  or rejected, each with flags, grade probabilities and heatmap links.
* **Dock stations** (dock key) grade the item on arrival and get tier, channel and
  expected recovery; **reviewers** work the queue; **admins** load catalog and orders.

Credentials: `Authorization: Bearer <key or token>` or `X-API-Key: <key>`.
Every error is JSON `{code, message, details}`.
"""


@dataclass
class Runtime:
    """What the lifespan built; closed on shutdown."""

    service: ReturnLensService
    model_version: str
    model_sha256: str
    policy_version: str
    close: Callable[[], None] | None = None


def build_runtime(settings: Settings) -> Runtime:
    """Migrate the DB, load + warm the model, load the policy, build the service (the
    start-up checks of ``serving.checks`` included).

    Blocking (seconds); the lifespan runs it in a worker thread.
    """
    from serving.checks import served_model_and_policy
    from serving.storage.db import Database
    from serving.storage.photostore import open_photo_store
    from vision.decode import DecodeLimits, MiB
    from vision.pipeline import Grader, Lanes, opencv_on_caller_threads

    opencv_on_caller_threads()
    model, policy = served_model_and_policy(settings)
    model.warmup()
    limits = DecodeLimits(
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_pixels,
        max_decode_bytes=settings.max_decode_mib * MiB,
    )
    lanes = Lanes(settings.inference_concurrency, settings.heavy_decode_threads)
    grader = Grader(model, profile="shopper", limits=limits, lanes=lanes)
    dock_grader = Grader(model, profile="dock", limits=limits, lanes=lanes)
    db = Database(settings.database_url, session_info=_session_info(settings))
    if settings.migrate_on_start:
        db.upgrade()
    photos = open_photo_store(settings)  # local folder or S3 bucket; makes photo_dir
    log.info("photo store: %s", photos.describe())
    _remove_leftover_temp_files(settings)
    heatmaps = HeatmapCache(
        cache_root_for(settings.photo_dir), max_bytes=settings.heatmap_cache_mib * MiB
    )
    heatmaps.trim()  # a smaller limit than last run, or temp files of a killed write
    service = ReturnLensService(
        db,
        photos,
        grader,
        dock_grader,
        policy,
        clock=lambda: datetime.now(UTC),
        heatmaps=heatmaps,
        abandoned_after=timedelta(hours=settings.abandoned_after_hours),
        review_order=ReviewOrder(
            weight_uncertainty=settings.review_weight_uncertainty,
            weight_unfamiliar=settings.review_weight_unfamiliar,
            weight_value=settings.review_weight_value,
            random_fraction=settings.review_random_fraction,
            salt=settings.review_random_salt,
        ),
    )
    # Shadow mode: a challenger graded off the request path (serving.services.shadow).
    try:
        shadow_runner = load_shadow(
            service, settings.resolve_shadow_model_path, queue=settings.shadow_queue
        )
    except Exception:  # other labels than the champion: start-up stops
        db.dispose()
        raise

    def close() -> None:
        if shadow_runner is not None:
            shadow_runner.close()
        db.dispose()

    return Runtime(
        service=service,
        model_version=model.version,
        model_sha256=model.sha256,
        policy_version=service.policy.version,  # resolved against the model's card
        close=close,
    )


def _session_info(settings: Settings) -> dict[str, Any]:
    """What writers must know of the deployment: which outbox channels deliver (an
    event's unconfigured channels are recorded skipped when it is written)."""
    from serving.services.outbox.events import CHANNELS_INFO, Channels

    channels = Channels(webhook=bool(settings.webhook_url), email=bool(settings.smtp_host))
    return {CHANNELS_INFO: channels}


def _start_outbox(db: Database, settings: Settings) -> OutboxWorker:
    """The notification outbox's dispatcher thread: one per serving process (their claims
    keep them from sending an event twice, serving.storage.outbox). Started by the
    lifespan, not ``build_runtime``: the parent of ``returnlens serve`` builds a runtime
    only to check and seed, and must not deliver; nor does an app given a service
    (tests), whose outbox the test drives itself."""
    from serving.services.outbox.dispatch import Dispatcher, OutboxConfig
    from serving.services.outbox.worker import OutboxWorker

    return OutboxWorker(Dispatcher(db, OutboxConfig.from_settings(settings))).start()


def _start_jobs(
    runtime: Runtime, settings: Settings
) -> tuple[JobQueue | None, OutboxNudger | None]:
    """The job queue (``serving.services.jobs``), for ``/readyz`` and, with
    ``jobs_outbox``, a thread enqueueing an outbox delivery job after each event. A queue
    that cannot be opened is logged and left out: the service runs without it, and the
    workers' sweep finds the events."""
    from serving.services.jobs import open_queue
    from serving.services.jobs.worker import OutboxNudger

    try:
        queue = open_queue(settings, runtime.service.db)
    except Exception:
        log.exception("the job queue cannot be opened; running without it")
        return None, None
    return queue, OutboxNudger(queue).start() if settings.jobs_outbox else None


def _remove_leftover_temp_files(settings: Settings) -> None:
    """Temporary files of writes killed mid-way (an hour old at least, so another
    worker's write in flight is left alone): photo store and data folder."""
    from serving.storage.gc import remove_stale_temp_files

    removed = remove_stale_temp_files(settings.photo_dir)
    if settings.data_dir.resolve() != settings.photo_dir.resolve():
        removed += remove_stale_temp_files(settings.data_dir, recursive=False)
    if removed:
        log.info("removed %d leftover temporary file(s) of interrupted writes", len(removed))


def _body_limits(settings: Settings) -> Callable[[str, str], int]:
    uploads, admin_cap, json_cap = (
        settings.max_request_bytes(),
        settings.max_admin_bytes,
        settings.max_json_bytes,
    )

    def limit_for(method: str, path: str) -> int:
        if path.startswith("/v1/admin/"):
            return admin_cap
        if method == "POST" and (path == "/v1/dock/inspections" or path.endswith("/photos")):
            return uploads
        return json_cap

    return limit_for


def _rate_limiter(settings: Settings, app: FastAPI) -> RateLimiter:
    """The address and credential rules on the configured shared storage; ``database``
    is the app's own database (known once the lifespan has built the service)."""
    if settings.rate_limit_storage == "database":
        from serving.storage.ratelimit_store import DatabaseStorage

        storage: Storage = DatabaseStorage(database=lambda: app.state.service.db)
    else:
        storage = open_storage(settings.rate_limit_storage)
    return RateLimiter(
        storage,
        per_ip=rule(settings.rate_limit_per_ip, settings.rate_limit_per_ip_burst),
        per_key=rule(settings.rate_limit_per_key, settings.rate_limit_per_key_burst),
    )


def _freeze_heap() -> None:
    """Take what start-up built out of the cyclic garbage collector's sight.

    A worker holds about 234,000 objects from start-up (modules, the app and its routes,
    SQLAlchemy's tables and caches, pydantic's validators) for its whole life. Every full
    collection walked them all: 50-120 ms of CPU in one stall of every request the worker
    held, and a young worker still met some while its first requests grew the heap (one
    in a 16-client ``perf`` cell: 1.9% of that cell's CPU, ``benchmarks/perf_service.py``,
    2026-12-04). ``gc.freeze`` moves them to a generation no collection walks (CPython's
    advice for a long-lived server); the garbage start-up left is collected first, so
    none of it is kept. Objects made later are collected as before."""
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None, *, service: ReturnLensService | None = None
) -> FastAPI:
    """The app. With ``service`` given (tests), the lifespan uses it as is."""
    settings = settings or Settings()
    metrics = Metrics(settings.metrics_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime: Runtime | None = None
        if app.state.service is None:
            if settings.start_gate is not None:  # `returnlens serve`'s checks, beside us
                from serving.checks import wait_for_start

                await anyio.to_thread.run_sync(wait_for_start, settings.start_gate)
            runtime = await anyio.to_thread.run_sync(build_runtime, settings)
            app.state.service = runtime.service
            app.state.model_version = runtime.model_version
            app.state.policy_version = runtime.policy_version
            metrics.set_model(runtime.model_version, runtime.model_sha256)
        else:
            info = model_info(app.state.service)
            app.state.model_version = info.model_version
            app.state.policy_version = info.policy_version
            metrics.set_model(info.model_version, info.model_sha256)
        if settings.seed_demo:  # `returnlens serve` seeds in its parent and turns this off
            from serving.demo import seed_demo

            result = await anyio.to_thread.run_sync(
                lambda: seed_demo(app.state.service, settings.data_dir, seed=settings.demo_seed)
            )
            for line in result.lines():
                log.warning("%s", line)
        admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
        # Threads for the grading use cases (uploads, inspections, reference photos): one
        # set for light requests, one for requests with a heavy photo (UploadSlots).
        app.state.upload_slots = UploadSlots.of(
            settings.light_upload_slots(), settings.heavy_upload_concurrency
        )
        app.state.upload_admission = UploadAdmission(
            settings.upload_admission_bytes, settings.upload_admission_wait_s
        )
        app.state.authenticator = Authenticator(app.state.service, admin_key=admin_key)
        service_now = app.state.service
        metrics.watch_drift(lambda: drift_gauges(service_now, settings.drift_window))
        familiarity = unfamiliarity_status(app.state.service)
        if not familiarity.available:  # grades, but abstains on every photo: say so once
            log.warning("%s", familiarity.note)
        outbox_worker = None
        if runtime is not None and settings.outbox_dispatch:
            outbox_worker = _start_outbox(runtime.service.db, settings)
        job_queue, nudger = (None, None) if runtime is None else _start_jobs(runtime, settings)
        app.state.jobs = job_queue
        _freeze_heap()
        app.state.ready = True
        metrics.ready.set(1)
        log.info("ready: model %s, policy %s", app.state.model_version, app.state.policy_version)
        try:
            yield
        finally:
            gc.unfreeze()  # another app in this process (tests) may be collected again
            app.state.ready = False
            metrics.ready.set(0)
            if outbox_worker is not None:  # waits for a send in flight: off the loop
                await anyio.to_thread.run_sync(outbox_worker.stop)
            if nudger is not None:
                nudger.stop()
            if job_queue is not None:
                job_queue.close()
            if runtime is not None and runtime.close is not None:
                runtime.close()

    # /docs and /redoc come from serving.api.docs with local assets (no CDN).
    app = FastAPI(
        title="ReturnLens",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = service
    app.state.ready = False
    app.state.jobs = None
    install_error_handlers(app)
    for module in (returns, labels, review, staff, ops, dock, admin, outbox, shadow, meta):
        app.include_router(module.router)
    app.include_router(jobs_api.router)
    app.include_router(web_router)  # shopper page /, /review, /ops, /static
    install_docs(app)  # /docs, /redoc, /docs/assets

    keep_photos_in_memory(settings.max_upload_bytes)
    configure_deadlines(
        settings.header_timeout_s,
        settings.body_timeout_s,
        on_cut=lambda reason: metrics.connections_cut.labels(reason=reason).inc(),
    )
    app.add_middleware(NulInUrlMiddleware)
    app.add_middleware(BodyLimitMiddleware, limit_for=_body_limits(settings))
    app.add_middleware(
        RateLimitMiddleware,
        limiter=_rate_limiter(settings, app),
        on_limited=lambda scope: metrics.rate_limited.labels(scope=scope).inc(),
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
