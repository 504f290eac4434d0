"""One upload's critical path, cut into its serial segments (``benchmarks/stage_cpu.py``).

An upload's latency at one client is a chain: the request arrives (the token check and
the multipart body come first), the photo is decoded, the model, the quality gate and
the copy check run side by side, and the decision is written and committed before the
answer leaves. The floor with the two checks (``floor_checks.py``) has only the middle
of that chain; the segments say how long the rest takes, each the median over the
uploads of the wall-clock time between two of its stages' spans.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

Span = tuple[str, float, float]  # label, start, end (perf_counter seconds)
SEGMENTS = (
    "before the upload's work (token check, body)",
    "decode",
    "model, quality gate and copy check, side by side",
    "from the last of them to the write",
    "write, commit and the rest of the upload",
    "answer",
)


class RequestClock:
    """ASGI middleware: the span of every ``POST .../photos`` request, appended to
    ``spans`` as ``(label, start, end)`` while ``on()`` says so (the bench's timed
    uploads), from the request's first ASGI call to the end of its answer."""

    def __init__(self, app: Any, spans: list[Span], label: str, on: Callable[[], bool]) -> None:
        self.app, self.spans, self.label, self.on = app, spans, label, on

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        timed = scope["type"] == "http" and scope["method"] == "POST"
        if not (timed and scope["path"].endswith("/photos")):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        await self.app(scope, receive, send)
        if self.on():
            self.spans.append((self.label, start, time.perf_counter()))


def segments(
    spans: Sequence[Span],
    *,
    request: str,
    upload: str,
    decode: str,
    parallel: Sequence[str],
    write: str,
) -> dict[str, float]:
    """Median ms of each serial segment of the uploads whose ``request`` span holds one
    ``upload`` span: before the upload's work (``request`` start to ``upload`` start:
    the token check and the body), the decode (to the last ``decode`` end), the parallel
    part (to the last end of the ``parallel`` stages), the wait for the write (to the
    ``write`` start), the write with its commit and the rest of the upload (to the
    ``upload`` end) and the answer (to the ``request`` end); ``total`` is the median
    request."""
    rows: list[dict[str, float]] = []
    for _, r0, r1 in (s for s in spans if s[0] == request):
        inside = [s for s in spans if s[0] != request and r0 <= s[1] <= r1]
        ups = [s for s in inside if s[0] == upload]
        if len(ups) != 1:
            continue
        _, u0, u1 = ups[0]
        decoded = max(e for label, _, e in inside if label == decode)
        checked = max(e for label, _, e in inside if label in parallel)
        written = min(s for label, s, _ in inside if label == write)
        points = (r0, u0, decoded, checked, written, u1, r1)
        row = {n: 1000 * (b - a) for n, a, b in zip(SEGMENTS, points[:-1], points[1:], strict=True)}
        row["total"] = 1000 * (r1 - r0)
        rows.append(row)
    if not rows:
        return {}
    return {k: round(statistics.median(row[k] for row in rows), 2) for k in rows[0]}
