"""``benchmarks/http_protocol.py``: each protocol it compares serves a whole multipart
body to the bare app (the run checks every answer's length), and the service's own
protocol is one of them."""

from __future__ import annotations

import os

import pytest

from benchmarks import http_protocol
from serving.commands.supervise import HTTP_PROTOCOL


def test_the_service_protocol_is_among_those_measured() -> None:
    assert HTTP_PROTOCOL in http_protocol.PROTOCOLS
    assert "h11" in http_protocol.PROTOCOLS  # uvicorn's pure-Python parser, the baseline


@pytest.mark.parametrize("protocol", http_protocol.PROTOCOLS)
def test_each_protocol_delivers_whole_bodies(protocol: str) -> None:
    photo = os.urandom(700_000)  # several socket reads per body
    ms = http_protocol.cpu_ms_per_request(protocol, photo, requests=3)
    assert ms >= 0.0
