"""Live servers for tests: a free port, a subprocess start, a bounded readiness wait.

``running(argv, ...)`` starts a server subprocess (its output goes to a log file), waits
until ``GET /readyz`` answers 200 and stops the process on exit. The wait polls with a
deadline and fails with the tail of the server's log when the process exits or the
deadline passes. ``wait_ready`` also accepts a callable for the base URL, for a child
that binds port 0 itself and reports the port it got (``tests/browser.py``).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

POLL_S = 0.1  # the polling interval of a bounded readiness wait, not a timing guess


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.is_file() else "(no log)"


def wait_ready(
    proc: subprocess.Popen[bytes],
    base: str | Callable[[], str | None],
    log: Path,
    timeout_s: float,
) -> str:
    """Poll ``{base}/readyz`` until it answers 200; return the base URL.

    Fails the test (with the log's tail) if the process exits first or the deadline
    passes. ``base`` may be a callable that returns None until the URL is known.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the test server exited with {proc.returncode}:\n{log_tail(log)}")
        url = base() if callable(base) else base
        if url:
            try:
                if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
        time.sleep(POLL_S)
    pytest.fail(f"the test server was not ready within {timeout_s:.0f} s:\n{log_tail(log)}")


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """Terminate, then kill if it does not exit in time."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


def start(
    argv: list[str], *, env: Mapping[str, str], cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, cwd=str(cwd), env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )


@contextmanager
def running(
    argv: list[str],
    *,
    base: str | Callable[[], str | None],
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
    timeout_s: float = 60.0,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A server subprocess, ready (``/readyz`` is 200) inside the block, stopped after."""
    proc = start(argv, env=env, cwd=cwd, log=log)
    try:
        yield proc, wait_ready(proc, base, log, timeout_s)
    finally:
        stop(proc)


def uvicorn_argv(port: int) -> list[str]:
    """The service's ASGI factory under plain uvicorn, as a deployment without the
    ``returnlens`` command would run it (no read deadlines of its own)."""
    import sys

    factory = ["serving.app:create_app", "--factory", "--host", "127.0.0.1"]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        *factory,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def serve_argv(port: int, database_url: str, model: Path, *extra: str) -> list[str]:
    """``returnlens serve`` on 127.0.0.1:``port`` with a database and a model, the way an
    operator starts it; ``extra`` flags (``--seed-demo``, ``--log-level info``) follow."""
    import sys

    target = ["--host", "127.0.0.1", "--port", str(port), "--database-url", database_url]
    return [
        sys.executable,
        "-m",
        "returnlens.cli",
        "serve",
        *target,
        "--model-path",
        str(model),
        *extra,
    ]


def clean_env(root: Path, **settings: str) -> dict[str, str]:
    """This process's environment without any RETURNLENS_ setting, then the data, photo
    and models folders under ``root`` and ``settings`` (``RETURNLENS_`` + upper-cased)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("RETURNLENS_")}
    env.update(
        {
            "RETURNLENS_DATA_DIR": str(root),
            "RETURNLENS_PHOTO_DIR": str(root / "photos"),
            "RETURNLENS_MODELS_DIR": str(root / "models"),
            **{f"RETURNLENS_{k.upper()}": v for k, v in settings.items()},
        }
    )
    return env


@contextmanager
def serve_demo(
    root: Path,
    model: Path,
    *,
    admin_key: str,
    timeout_s: float,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """``returnlens serve --seed-demo`` with ``model`` on SQLite under ``root``, the way an
    operator starts it (a subprocess, its own environment); yields the base URL."""
    port = free_port()
    env = clean_env(root, admin_key=admin_key, ort_threads="2")
    env.update(extra_env or {})
    db_url = f"sqlite:///{root / 'demo.db'}"
    argv = serve_argv(port, db_url, model, "--seed-demo", "--log-level", "warning")
    base = f"http://127.0.0.1:{port}"
    with running(
        argv, base=base, env=env, cwd=root, log=root / "server.log", timeout_s=timeout_s
    ) as (_, ready):
        yield ready
