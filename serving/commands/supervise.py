"""uvicorn's options for the service, and the supervisor of several workers.

``returnlens serve`` prepares everything once in its own process (model, policy,
migrations, demo data). With one worker it then serves from that process. With several
it replaces itself (``os.execv``: the same pid, so signals and process managers see no
change) with ``python -m serving.commands.supervise``, a fresh interpreter that imports
uvicorn and nothing of the service. The supervisor only starts, watches and stops the
workers, which import the app themselves; as the ``serve`` process it had kept about
290 MiB of RSS for nothing (the whole service imported, a runtime built and dropped),
where this module's imports take about 25 MiB.

Kept free of the service's imports: this module runs as that supervisor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from typing import Any

APP = "serving.app:create_app"
# Read deadlines for slow and stalled clients (serving/deadlines.py).
HTTP_PROTOCOL = "serving.deadlines:DeadlineH11Protocol"


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


def run(options: UvicornOptions) -> None:
    """Serve the app with uvicorn (in this process for one worker, else as supervisor)."""
    import uvicorn

    uvicorn.run(APP, factory=True, http=HTTP_PROTOCOL, **asdict(options))


def exec_supervisor(options: UvicornOptions) -> None:
    """Replace this process with the supervisor (never returns)."""
    sys.stdout.flush()
    sys.stderr.flush()
    argv = options.argv()
    os.execv(argv[0], argv)


def _parse(argv: list[str] | None) -> UvicornOptions:
    p = argparse.ArgumentParser(prog=f"python -m {__name__}")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--log-level", dest="log_level", required=True)
    p.add_argument("--limit-concurrency", dest="limit_concurrency", type=int, required=True)
    return UvicornOptions(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    """Supervise the workers; on the way out, remove the Prometheus multiprocess folder
    ``returnlens serve`` made for this run (``RETURNLENS_METRICS_DIR``)."""
    options = _parse(argv)
    try:
        run(options)
    finally:
        metrics_dir = os.environ.get("RETURNLENS_METRICS_DIR")
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
