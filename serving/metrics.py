"""Prometheus metrics, one registry per app (two apps in one test process never collide).

Requests are timed by a pure ASGI middleware labelled with the route *template*
(``/v1/returns/{return_id}``), never the raw path, so label cardinality stays bounded.
Domain counters (decisions, flags, grades, quality failures, inspections) are recorded by
the routers from the service's answers; the service itself knows nothing of Prometheus.

Several workers (``returnlens serve --workers N``): each worker used to keep its own
counters, so a scrape saw one worker's share. With ``multiprocess_dir`` (set by
``returnlens serve`` for N > 1, with ``PROMETHEUS_MULTIPROC_DIR`` pointing at the same
fresh folder before the workers import prometheus_client) every worker writes its values
to memory-mapped files there and ``render()`` sums all workers' files, so every scrape
shows the same totals whichever worker answers. Gauges that are per-process states (ready,
model info) are merged with ``max``.

Drift gauges (``returnlens_drift_*``) are computed at scrape time from the database by a
custom collector (``DriftCollector``; the report function comes from the app), not kept
in process memory: the database is shared by all workers, so they agree too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vision.drift import DriftReport

log = logging.getLogger("returnlens.metrics")
DRIFT_CACHE_S = 10.0  # a scrape every few seconds reads the window at most this often


class DriftCollector(Collector):
    """Drift gauges computed from ``report()`` (None: no reference) at scrape time.

    The report is cached for ``ttl_s`` so frequent scrapes do not each read the window;
    a failing report is logged and leaves the drift gauges out of that scrape.
    """

    def __init__(self, ttl_s: float = DRIFT_CACHE_S) -> None:
        self.report: Callable[[], DriftReport | None] | None = None
        self.ttl_s = ttl_s
        self._cached: tuple[float, DriftReport | None] | None = None
        self._lock = threading.Lock()

    def _current(self) -> DriftReport | None:
        if self.report is None:
            return None
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.ttl_s:
                self._cached = (now, self.report())
            return self._cached[1]

    def collect(self) -> Iterator[Metric]:
        try:
            report = self._current()
        except Exception:  # a scrape must not fail because the database hiccuped
            log.exception("drift report failed")
            return
        if report is None:
            return
        photos = GaugeMetricFamily(
            "returnlens_drift_window_photos", "Photos in the drift window (latest stored)"
        )
        photos.add_metric([], report.photos)
        stat = GaugeMetricFamily(
            "returnlens_drift_statistic", "Chi-square statistic vs the reference", labels=["signal"]
        )
        pval = GaugeMetricFamily(
            "returnlens_drift_p_value", "Chi-square p-value vs the reference", labels=["signal"]
        )
        psi = GaugeMetricFamily(
            "returnlens_drift_psi", "Population stability index vs the reference", labels=["signal"]
        )
        drifted = GaugeMetricFamily(
            "returnlens_drift_detected", "1 when the signal drifted", labels=["signal"]
        )
        for s in report.signals:
            drifted.add_metric([s.signal], 1.0 if s.drifted else 0.0)
            if s.statistic is not None and s.p_value is not None and s.psi is not None:
                stat.add_metric([s.signal], s.statistic)
                pval.add_metric([s.signal], s.p_value)
                psi.add_metric([s.signal], s.psi)
        accuracy = GaugeMetricFamily(
            "returnlens_estimated_accuracy",
            "Mean top-class calibrated probability (window) and the reference's",
            labels=["source"],
        )
        for source, value in (
            ("window", report.estimated_accuracy),
            ("reference", report.reference_estimated_accuracy),
            ("reference_measured", report.reference_accuracy),
        ):
            if value is not None:
                accuracy.add_metric([source], value)
        yield from (photos, stat, pval, psi, drifted, accuracy)


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The app's collectors. ``render()`` gives the Prometheus text exposition."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = multiprocess_dir
        self.drift = DriftCollector()
        r = self.registry
        self.request_seconds = Histogram(
            "returnlens_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "returnlens_decisions_total", "Shopper decisions by outcome", ["outcome"], registry=r
        )
        self.flags = Counter(
            "returnlens_flags_total",
            "Decision and inspection flags by code",
            ["code", "source"],
            registry=r,
        )
        self.grades = Counter(
            "returnlens_grades_total", "Item grades by source", ["grade", "source"], registry=r
        )
        self.quality_failures = Counter(
            "returnlens_quality_failures_total",
            "Photos failing a quality-gate check",
            ["check", "source"],
            registry=r,
        )
        self.inspections = Counter(
            "returnlens_inspections_total",
            "Dock inspections by disposition channel",
            ["channel"],
            registry=r,
        )
        self.model_info = Gauge(
            "returnlens_model_info",
            "Loaded model (value 1)",
            ["version", "sha256"],
            registry=r,
            multiprocess_mode="max",
        )
        self.ready = Gauge(
            "returnlens_ready",
            "1 when the model is warmed up and the database migrated",
            registry=r,
            multiprocess_mode="max",
        )
        self.rate_limited = Counter(
            "returnlens_rate_limited_total",
            "Requests refused by the rate limiter",
            ["scope"],
            registry=r,
        )
        self.connections_cut = Counter(
            "returnlens_connections_cut_total",
            "Connections the HTTP protocol answered or closed itself (serving/deadlines.py): "
            "idle, head_timeout, body_timeout, head_too_large, invalid_http, "
            "too_many_connections",
            ["reason"],
            registry=r,
        )
        if multiprocess_dir is None:  # else render() adds it to the merged registry
            r.register(self.drift)

    def render(self) -> bytes:
        """The exposition: every worker's values in multiprocess mode, plus drift."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=str(self.multiprocess_dir))
        merged.register(self.drift)
        return generate_latest(merged)

    def watch_drift(self, report: Callable[[], DriftReport | None]) -> None:
        """Report drift gauges from ``report()`` (computed at scrape time, cached)."""
        self.drift.report = report

    def set_model(self, version: str, sha256: str) -> None:
        self.model_info.clear()
        self.model_info.labels(version=version, sha256=sha256[:12]).set(1)

    def record_photos(self, photos: Iterable[Mapping[str, Any]], source: str) -> None:
        """Count failed quality checks of photo quality reports (``QualityReport.to_dict``)."""
        for quality in photos:
            for check in quality.get("checks", ()):
                if not check.get("passed", True):
                    self.quality_failures.labels(check=str(check.get("name")), source=source).inc()

    def record_decision(
        self, outcome: str, grade: str | None, flags: Iterable[Mapping[str, Any]]
    ) -> None:
        self.decisions.labels(outcome=outcome).inc()
        if grade:
            self.grades.labels(grade=grade, source="shopper").inc()
        for flag in flags:
            self.flags.labels(code=str(flag.get("code")), source="shopper").inc()

    def record_inspection(
        self, channel: str | None, grade: str | None, flags: Iterable[Mapping[str, Any]]
    ) -> None:
        self.inspections.labels(channel=channel or "none").inc()
        if grade:
            self.grades.labels(grade=grade, source="dock").inc()
        for flag in flags:
            self.flags.labels(code=str(flag.get("code")), source="dock").inc()


def route_template(scope: Scope) -> str:
    """The matched route's path template, or a fixed label for unmatched paths."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class MetricsMiddleware:
    """Times every HTTP request and labels it with route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.request_seconds.labels(
                route=route_template(scope), method=scope.get("method", ""), status=str(status)
            ).observe(time.perf_counter() - start)
