"""Wiring of one station run: source -> trigger -> worker -> sink (+ delivery) -> output.

``run_station(DockOptions)`` is what ``returnlens dock`` calls; tests and the benchmark
call it too. On the way out it stops the frame loop, finishes queued captures, and gives
the delivery worker ``drain_timeout`` seconds to empty the spool; whatever is still
pending stays in the spool file and is delivered on the next start.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.dock.deliver import Deliverer, FailoverPoster, HttpPoster
from serving.dock.identify import Identifier, StdinIds
from serving.dock.output import EventLog
from serving.dock.process import ApiSink, Preparer, Sink
from serving.dock.report import LocalSink, Reporter
from serving.dock.source import Backoff, ResilientSource, parse_source
from serving.dock.spool import Spool
from serving.dock.station import Station, Worker
from serving.dock.trigger import PresenceTrigger, TriggerConfig
from vision.errors import ConfigError

log = logging.getLogger("returnlens.dock")
SOURCE_BACKOFF = Backoff(initial=0.5, factor=2.0, maximum=30.0)
DELIVERY_BACKOFF = Backoff(initial=1.0, factor=2.0, maximum=60.0)


@dataclass(frozen=True)
class DockOptions:
    source: str
    api: str | None = None  # None: standalone
    key: str | None = None
    station_id: str = "dock-1"
    return_id: str | None = None
    out: Path = Path("var/dock")
    spool: Path | None = None
    k: int = 3
    loop: bool = False
    max_frames: int | None = None
    model: Path | None = None
    policy: Path | None = None
    category: str = "default"
    price: float | None = None
    still_frames: int = 8
    empty_frames: int = 6
    min_item: float = 0.01
    motion: float = 0.003
    diff: float = 30.0
    use_stdin: bool = False
    id_wait: float = 0.0
    crop: bool = True
    save_frames: bool = False
    retry_failed: bool = False
    drain_timeout: float = 30.0
    source_backoff: Backoff = SOURCE_BACKOFF
    delivery_backoff: Backoff = DELIVERY_BACKOFF

    def trigger_config(self) -> TriggerConfig:
        return TriggerConfig(
            still_frames=self.still_frames,
            empty_frames=self.empty_frames,
            min_item_fraction=self.min_item,
            motion_fraction=self.motion,
            diff_threshold=self.diff,
        )


def load_grader(model: Path | None) -> Any:
    """The dock Grader: --model, else the model `returnlens serve` would serve."""
    from serving.settings import Settings
    from vision.pipeline import Grader

    settings = Settings()  # RETURNLENS_ORT_THREADS sizes the session (None: every core)
    if model is None:
        model = settings.resolve_model_path()
    grader = Grader.load(model, profile="dock", intra_op_threads=settings.ort_threads)
    grader.model.warmup()  # the first item must not pay for graph set-up
    return grader


def open_spool(path: Path) -> Spool:
    """The spool is the one thing the station cannot run without (it is the no-loss
    guarantee), so failing to open it stops the start with a sentence."""
    try:
        return Spool(path)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot open the spool {path}: {exc}", code="spool_unavailable") from exc


def run_station(
    opts: DockOptions,
    *,
    echo: Callable[[dict[str, Any]], None] | None = None,
    stop: threading.Event | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    stop = stop or threading.Event()
    trigger_cfg = opts.trigger_config()  # validate before touching anything
    if opts.price is not None and not (math.isfinite(opts.price) and opts.price >= 0):
        raise ConfigError("--price must be a number >= 0", code="invalid_argument")
    spec = parse_source(opts.source)
    events = EventLog(opts.out / "events.jsonl", echo=echo)
    spool = open_spool(opts.spool or opts.out / "spool.db")
    if opts.retry_failed:
        events("requeued_failed", count=spool.requeue_failed())
    deliverer: Deliverer | None = None
    poster: FailoverPoster | None = None
    sink: Sink
    if opts.api:
        grader = load_grader(opts.model) if opts.model else None
        reporter = Reporter(events, opts.out, grader=grader, save_frames=opts.save_frames)
        urls = [u.strip() for u in opts.api.split(",") if u.strip()]  # replicas, in order
        poster = FailoverPoster([HttpPoster(u, opts.key or "") for u in urls])
        deliverer = Deliverer(
            spool,
            poster,
            backoff=opts.delivery_backoff,
            on_delivered=reporter.delivered,
            on_event=events,
        ).start()
        sink = ApiSink(spool, opts.station_id, events, kick=deliverer.kick)
    else:
        from serving.policy import load_policy

        grader = load_grader(opts.model)
        policy = load_policy(opts.policy)
        policy.require_compatible(grader.card.grade_labels, grader.card.damage_labels)
        policy = policy.for_model(grader.card.thresholds)  # as the service resolves it
        reporter = Reporter(events, opts.out, grader=grader, save_frames=opts.save_frames)
        sink = LocalSink(
            grader,
            policy,
            spool,
            reporter,
            station_id=opts.station_id,
            category=opts.category,
            price=opts.price,
        )
    stdin = StdinIds(sys.stdin).start() if opts.use_stdin else None
    identifier = Identifier(stdin=stdin, cli_id=opts.return_id, wait=opts.id_wait)
    preparer = Preparer(identifier, crop_items=opts.crop, gate=bool(opts.api))
    worker = Worker(preparer, sink, events).start()
    source = ResilientSource.from_spec(
        spec, loop=opts.loop, backoff=opts.source_backoff, on_event=events, stop=stop
    )
    station = Station(
        source, PresenceTrigger(trigger_cfg), worker, events, k=opts.k, on_frame=on_frame
    )
    events(
        "station_started",
        station_id=opts.station_id,
        source=str(spec.target),
        mode="api" if opts.api else "standalone",
        spool=spool.counts(),
    )
    try:
        stats = station.run(opts.max_frames)
    finally:
        worker.close()
        drained = True
        if deliverer is not None:
            deliverer.stop()
            drained = deliverer.drain(opts.drain_timeout)
        if poster is not None:
            poster.close()
        counts = spool.counts()
        spool.close()
    summary = {
        "frames": stats.frames,
        "fps": stats.fps,
        "seconds": stats.seconds,
        "inspections": stats.inspections,
        "errors": stats.errors,
        "spool": counts,
        "drained": drained,
        "reconnects": source.reconnects,
    }
    events("station_stopped", **summary)
    return summary
