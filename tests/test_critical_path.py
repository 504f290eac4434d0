"""``benchmarks/harness/critical_path.py``: an upload's serial segments come from the
right stages' spans, a request without its upload span is left out, and the ASGI clock
times only photo uploads, only while on."""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.harness.critical_path import SEGMENTS, RequestClock, Span, segments


def _upload(t0: float, ort_end: float) -> list[Span]:
    """One request at ``t0`` (seconds): body 2 ms, decode 5, model until ``ort_end``,
    gate 20, copy check 22, write 3 ms after the last, upload end 5 ms later, answer 1."""
    return [
        ("request", t0, t0 + ort_end + 0.009),
        ("upload", t0 + 0.002, t0 + ort_end + 0.008),
        ("decode", t0 + 0.002, t0 + 0.007),
        ("ort", t0 + 0.007, t0 + ort_end),
        ("gate", t0 + 0.007, t0 + 0.020),
        ("copy", t0 + 0.007, t0 + 0.022),
        ("write", t0 + ort_end + 0.003, t0 + ort_end + 0.005),
    ]


def _segments(spans: list[Span]) -> dict[str, float]:
    return segments(
        spans, request="request", upload="upload", decode="decode",
        parallel=("ort", "gate", "copy"), write="write",
    )  # fmt: skip


def test_each_segment_is_measured_between_the_right_spans() -> None:
    spans = _upload(10.0, 0.030) + _upload(20.0, 0.030) + [("request", 30.0, 30.1)]
    got = _segments(spans)  # the last request has no upload span: left out
    want = dict(zip(SEGMENTS, (2.0, 5.0, 23.0, 3.0, 5.0, 1.0), strict=True))
    assert set(got) == {*SEGMENTS, "total"}
    for name, ms in want.items():
        assert abs(got[name] - ms) < 1e-6, (name, got[name])
    assert abs(got["total"] - 39.0) < 1e-6


def test_the_copy_check_ending_last_ends_the_parallel_part() -> None:
    got = _segments(_upload(10.0, 0.015))  # the model done before the gate and the copy
    assert abs(got[SEGMENTS[2]] - 15.0) < 1e-6  # decode end (7 ms) to the copy's (22)


def test_the_clock_times_photo_uploads_only_while_on() -> None:
    spans: list[Span] = []
    on = [False]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    clock = RequestClock(app, spans, "request", lambda: on[0])
    upload = {"type": "http", "method": "POST", "path": "/v1/returns/r/photos"}
    other = {"type": "http", "method": "GET", "path": "/v1/returns/r/photos"}
    asyncio.run(clock(upload, None, None))
    on[0] = True
    asyncio.run(clock(other, None, None))
    asyncio.run(clock({"type": "lifespan"}, None, None))
    asyncio.run(clock(upload, None, None))
    assert [s[0] for s in spans] == ["request"] and spans[0][1] <= spans[0][2]
