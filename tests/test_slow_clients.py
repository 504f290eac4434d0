"""Slow and stalled clients are cut off; everyone else keeps being served.

A live ``returnlens serve`` (a subprocess, as an operator starts it) with short read
deadlines (``RETURNLENS_HEADER_TIMEOUT_S``, ``RETURNLENS_BODY_TIMEOUT_S``) and a small
connection cap (``RETURNLENS_MAX_CONNECTIONS``). Raw sockets play the hostile clients:
half a request head, a body that stops, a head dripped one byte at a time, and a pile
of stalled connections beyond the cap. Each test waits for the cut-off with a bounded
timeout (``CUT_OFF_WITHIN_S``); no assertion rests on a sleep.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import live

HEADER_TIMEOUT_S = 3
BODY_TIMEOUT_S = 3
MAX_CONNECTIONS = 30
CUT_OFF_WITHIN_S = 20.0  # the deadline plus a loaded machine's slack
PARTIAL_HEAD = b"POST /v1/returns HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The live server's log (stdout and stderr of ``returnlens serve``)."""
    return tmp_path_factory.mktemp("slow") / "server.log"


@pytest.fixture(scope="module")
def server(server_log: Path, tiny_model: Path) -> Iterator[str]:
    root = server_log.parent
    port = live.free_port()
    env = live.clean_env(
        root,
        ort_threads="1",
        header_timeout_s=str(HEADER_TIMEOUT_S),
        body_timeout_s=str(BODY_TIMEOUT_S),
        max_connections=str(MAX_CONNECTIONS),
    )
    db_url = f"sqlite:///{root / 'slow.db'}"
    argv = live.serve_argv(port, db_url, tiny_model, "--log-level", "info")
    base = f"http://127.0.0.1:{port}"
    log = server_log
    with live.running(argv, base=base, env=env, cwd=root, log=log, timeout_s=120):
        yield base
    assert "Traceback" not in log.read_text(errors="replace"), live.log_tail(log)


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=CUT_OFF_WITHIN_S)


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded wait)."""
    sock.settimeout(CUT_OFF_WITHIN_S)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept a stalled connection open for {CUT_OFF_WITHIN_S} s")
    finally:
        sock.close()
    return b"".join(chunks)


def _timeout_answer(data: bytes) -> dict[str, object]:
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), data[:200]
    assert b"connection: close" in head.lower()
    answer: dict[str, object] = json.loads(body)
    assert answer["code"] == "request_timeout" and answer["message"]
    return answer


def _served(base: str) -> int:
    return httpx.get(f"{base}/healthz", timeout=CUT_OFF_WITHIN_S).status_code


def test_a_stalled_head_is_cut_off_while_others_are_served(server: str) -> None:
    stalled = [_connect(server) for _ in range(MAX_CONNECTIONS // 2)]
    for sock in stalled:
        sock.sendall(PARTIAL_HEAD)  # and never the blank line that ends the head
    assert [_served(server) for _ in range(5)] == [200] * 5
    r = httpx.post(f"{server}/v1/orders/lookup", json={"order_id": "x", "email": "a@b.c"})
    assert r.status_code == 404  # a real route, answered as usual
    for sock in stalled:
        _timeout_answer(_until_closed(sock))
    assert _served(server) == 200


def test_a_stalled_body_gets_a_408_and_nothing_else(server: str) -> None:
    sock = _connect(server)
    sock.sendall(PARTIAL_HEAD + b"Content-Length: 400\r\n\r\n" + b'{"order_id": "ORD-1"')
    _timeout_answer(_until_closed(sock))
    assert _served(server) == 200


def test_an_early_answer_does_not_keep_a_stalled_body_open(server: str) -> None:
    """The upload route refuses a missing credential before reading the body; the client
    that then never finishes its body does not keep the connection (closed after the
    answer, at the latest at the body deadline)."""
    sock = _connect(server)
    sock.sendall(
        b"POST /v1/returns/ret_x/photos HTTP/1.1\r\nHost: t\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n"
    )
    data = _until_closed(sock)
    assert data.startswith(b"HTTP/1.1 401"), data[:200]


def test_a_dripping_head_does_not_extend_its_deadline(server: str) -> None:
    """One byte at a time keeps the connection busy but not alive: the deadline is a
    point in time, not an idle timer."""
    sock = _connect(server)
    head = PARTIAL_HEAD * 50  # far more bytes than can drip in before the deadline
    started = time.monotonic()
    sock.settimeout(0.2)  # the drip's pace: one byte per unanswered wait
    closed = False
    for byte in head:
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(65536) is not None:  # an answer or the close: cut off
                closed = True
                break
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        if time.monotonic() - started > CUT_OFF_WITHIN_S:
            break
    sock.close()
    assert closed, f"a dripping client was still connected after {CUT_OFF_WITHIN_S} s"


def test_the_connection_cap_and_stalled_clients_freeing_it(server: str) -> None:
    refused_before = _cut(server, "too_many_connections")  # read below the cap
    stalled = [_connect(server) for _ in range(MAX_CONNECTIONS * 3)]
    for sock in stalled:
        sock.sendall(PARTIAL_HEAD)
    capped = httpx.get(f"{server}/healthz", timeout=CUT_OFF_WITHIN_S)
    assert capped.status_code == 503  # over the cap: refused, not queued for ever
    assert capped.json()["code"] == "too_many_connections" and capped.json()["message"]
    for sock in stalled:
        _until_closed(sock)  # every one of them cut off at its deadline
    assert [_served(server) for _ in range(5)] == [200] * 5
    assert _cut(server, "too_many_connections") == refused_before + 1


def _head_with(pad: int) -> bytes:
    """A GET /healthz head carrying ``pad`` bytes of one header's value."""
    return b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"p" * pad + b"\r\n\r\n"


def test_an_oversized_head_gets_a_431_and_a_large_one_is_served(server: str) -> None:
    """llhttp has no limit of its own on a head; the protocol keeps h11's 16 KiB."""
    sock = _connect(server)
    sock.sendall(_head_with(12 * 1024) + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    first = sock.recv(65536)  # both answered on the kept-alive connection
    while first.count(b"HTTP/1.1 200") < 2:
        more = sock.recv(65536)
        assert more, first[:300]
        first += more
    sock.close()
    sock = _connect(server)
    sock.sendall(_head_with(17 * 1024))
    data = _until_closed(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431"), data[:200]
    assert b"connection: close" in head.lower()
    answer = json.loads(body)
    assert answer["code"] == "request_head_too_large" and answer["message"]
    assert _served(server) == 200


def test_the_log_names_the_refusal_it_was(server: str, server_log: Path) -> None:
    """An operator reading the log sees a head over the limit as that, not as invalid
    HTTP (uvicorn warns "Invalid HTTP request received." for every error of its parser,
    and the limit stops the parser from a callback), and bytes that are not HTTP with
    the parser's reason. Each line is written before its connection is closed."""
    size_before = server_log.stat().st_size
    sock = _connect(server)
    sock.sendall(_head_with(17 * 1024))
    assert _until_closed(sock).startswith(b"HTTP/1.1 431")
    sock = _connect(server)
    sock.sendall(b"HELLO THERE\r\n\r\n")
    assert _until_closed(sock).startswith(b"HTTP/1.1 400")
    with server_log.open("rb") as f:
        f.seek(size_before)
        lines = f.read().decode(errors="replace").splitlines()
    assert not [line for line in lines if "Invalid HTTP request received" in line], lines
    assert [line for line in lines if f"its head is over {16 * 1024} bytes" in line], lines
    invalid = [line for line in lines if "its request is not valid HTTP" in line]
    assert len(invalid) == 1 and "()" not in invalid[0], lines


def test_an_endless_header_line_is_cut_off_early(server: str) -> None:
    """A head that never ends is not buffered for as long as its deadline lasts: the
    connection is closed long before 8 MiB of it could be sent."""
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: ")
    sent, cut_off = 0, False
    try:
        while sent < 8 * 1024 * 1024:
            sock.sendall(b"p" * 16384)
            sent += 16384
    except (BrokenPipeError, ConnectionResetError):
        cut_off = True
    if not cut_off:  # every byte fit in the socket buffers: the close must follow
        _until_closed(sock)
        cut_off = True
    sock.close()
    assert cut_off and sent < 8 * 1024 * 1024, f"{sent} bytes of one header were accepted"
    assert _served(server) == 200


def test_a_request_that_is_not_http_gets_a_coded_400(server: str) -> None:
    sock = _connect(server)
    sock.sendall(b"HELLO THERE\r\n\r\n")
    head, _, body = _until_closed(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    answer = json.loads(body)
    assert answer["code"] == "invalid_http" and answer["message"]
    assert _served(server) == 200


def _cut(base: str, reason: str) -> float:
    """``returnlens_connections_cut_total`` for ``reason`` on the server's /metrics."""
    text = httpx.get(f"{base}/metrics", timeout=CUT_OFF_WITHIN_S).text
    prefix = f'returnlens_connections_cut_total{{reason="{reason}"}} '
    values = [float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)]
    return values[0] if values else 0.0


def test_each_connection_the_protocol_cuts_is_counted_by_reason(server: str) -> None:
    """The app's request metrics never see these answers: the protocol counts them."""
    reasons = ("invalid_http", "head_too_large", "body_timeout")
    before = {r: _cut(server, r) for r in reasons}
    for data in (b"HELLO THERE\r\n\r\n", _head_with(17 * 1024)):
        sock = _connect(server)
        sock.sendall(data)
        _until_closed(sock)
    sock = _connect(server)
    sock.sendall(PARTIAL_HEAD + b"Content-Length: 400\r\n\r\n" + b'{"order_id": "ORD-1"')
    _timeout_answer(_until_closed(sock))
    assert {r: _cut(server, r) - before[r] for r in reasons} == dict.fromkeys(reasons, 1.0)
