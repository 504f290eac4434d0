"""Prometheus metrics, one registry per app (two apps in one test process never collide).

Requests are timed by a pure ASGI middleware labelled with the route *template*
(``/v1/returns/{return_id}``), never the raw path, so label cardinality stays bounded.
Domain counters (decisions, flags, grades, quality failures, inspections) are recorded by
the routers from the service's answers; the service itself knows nothing of Prometheus.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The app's collectors. ``render()`` gives the Prometheus text exposition."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
            "returnlens_model_info", "Loaded model (value 1)", ["version", "sha256"], registry=r
        )
        self.ready = Gauge(
            "returnlens_ready",
            "1 when the model is warmed up and the database migrated",
            registry=r,
        )
        self.rate_limited = Counter(
            "returnlens_rate_limited_total",
            "Requests refused by the rate limiter",
            ["scope"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

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
