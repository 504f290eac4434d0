"""uvicorn's options for the service, and the supervisor of several workers.

``returnlens serve`` with one worker checks and builds everything in its own process,
then serves from it. With several it starts the start-up checks in a process of their
own (``serving/commands/startcheck.py``) and replaces itself (``os.execv``: the same pid,
so signals and process managers see no change) with ``python -m
serving.commands.supervise``, a fresh interpreter that imports uvicorn and nothing of the
service. The supervisor starts, watches and stops the workers, which import the app
themselves while the checks run, and opens the start gate when the checks pass. As the
``serve`` process it had kept about 290 MiB of RSS for nothing (the whole service
imported, a runtime built and dropped); this module's imports take about 25 MiB.

Kept free of the service's imports: this module runs as that supervisor.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

APP = "serving.asgi:create_app"
# Read deadlines for slow and stalled clients (serving/deadlines.py).
HTTP_PROTOCOL = "serving.deadlines:DeadlineProtocol"


@dataclass(frozen=True)
class UvicornOptions:
    host: str
    port: int
    workers: int
    log_level: str
    # Connections a worker serves at once; over it, requests get a 503.
    limit_concurrency: int

    @classmethod
    def of(cls, settings: Any) -> UvicornOptions:
        """The options of ``settings`` (a ``serving.settings.Settings``)."""
        return cls(
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            limit_concurrency=settings.max_connections,
        )

    def argv(self) -> list[str]:
        """This module's command line for these options."""
        flags = [(f"--{k.replace('_', '-')}", str(v)) for k, v in asdict(self).items()]
        return [sys.executable, "-m", __name__, *(part for flag in flags for part in flag)]


def run(options: UvicornOptions) -> int:
    """Serve the app with uvicorn (in this process for one worker, else as supervisor);
    returns the exit status.

    One worker: ``uvicorn.run``, which exits with its start-up failure status (3) when
    the worker cannot start. Several: uvicorn's own supervisor, run here rather than
    through ``uvicorn.run`` so a worker that failed to start is seen. uvicorn then stops
    every worker (the next would fail the same way) but ``uvicorn.run`` returns as if
    all went well, so ``returnlens serve`` exited 0 and a process manager's restart on
    failure never fired. The start-up checks catch what they know of first; this covers
    whatever fails in a worker's own start."""
    import uvicorn

    if options.workers == 1:
        uvicorn.run(APP, factory=True, http=HTTP_PROTOCOL, **asdict(options))
        return 0
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(APP, factory=True, http=HTTP_PROTOCOL, **asdict(options))
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: a second Ctrl-C
        supervisor.run()
    failed = any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)
    return STARTUP_FAILURE if failed else 0


def exec_supervisor(options: UvicornOptions, *, checker: int, gate: str) -> None:
    """Replace this process with the supervisor (never returns). ``checker``: the pid of
    the start-up checks' process; ``gate``: the file to create once they pass."""
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [*options.argv(), "--checker", str(checker), "--gate", gate]
    os.execv(argv[0], argv)


def _await_checks(checker: int, gate: str) -> None:
    """Open the start gate when the checks' process exits 0. Otherwise it has printed
    why: stop the workers (spawned or not yet: one that outlives this process sees its
    parent gone at the gate, ``serving.checks.wait_for_start``) and exit with its
    status, as ``returnlens serve`` with one worker would."""
    import multiprocessing

    _, status = os.waitpid(checker, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        Path(gate).touch()
        return
    for worker in multiprocessing.active_children():
        worker.kill()
    _cleanup(gate)
    os._exit(code if code > 0 else 1)


def _cleanup(gate: str | None) -> None:
    """Remove this run's folders: the Prometheus multiprocess folder ``returnlens serve``
    made (``RETURNLENS_METRICS_DIR``) and the start gate's."""
    for folder in (os.environ.get("RETURNLENS_METRICS_DIR"), gate and os.path.dirname(gate)):
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def _parse(argv: list[str] | None) -> tuple[UvicornOptions, int | None, str | None]:
    p = argparse.ArgumentParser(prog=f"python -m {__name__}")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--log-level", dest="log_level", required=True)
    p.add_argument("--limit-concurrency", dest="limit_concurrency", type=int, required=True)
    p.add_argument("--checker", type=int, help="pid of the start-up checks' process")
    p.add_argument("--gate", help="the start gate's file, created once the checks pass")
    args = vars(p.parse_args(argv))
    checker, gate = args.pop("checker"), args.pop("gate")
    return UvicornOptions(**args), checker, gate


def main(argv: list[str] | None = None) -> int:
    """Supervise the workers (and the start-up checks, when given); on the way out,
    remove this run's folders. Exits 3 when a worker failed to start (``run``)."""
    options, checker, gate = _parse(argv)
    if checker is not None and gate is not None:
        threading.Thread(target=_await_checks, args=(checker, gate), daemon=True).start()
    try:
        return run(options)
    finally:
        _cleanup(gate)


if __name__ == "__main__":
    raise SystemExit(main())
