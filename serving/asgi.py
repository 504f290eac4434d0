"""The app factory ``returnlens serve``'s workers start from: ``serving.asgi:create_app``.

The same app as ``serving.app.create_app``, with the workers' imports of the service
taken one at a time. Importing the service is most of a worker's start (about 2 s of CPU
on the 2-core box), and all the workers start at once, beside the start-up checks. On
few cores they would share them and all be ready late; one at a time, the first is
ready (and ``/readyz`` answers 200) about as soon as a lone worker would be, and each
next one imports while the one before builds its runtime. A lock file beside the start
gate orders them (``fcntl.flock``; where there is no gate, or no ``fcntl``, each worker
imports at once).

Kept light at import: this module is what uvicorn imports in every worker first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def _one_at_a_time(lock: Path | None) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not Unix: no ordering
        fcntl = None  # type: ignore[assignment]
    if lock is None or fcntl is None:
        yield
        return
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        yield


def create_app() -> Any:
    from serving.settings import Settings

    settings = Settings()
    gate = settings.start_gate
    with _one_at_a_time(gate.with_name("import.lock") if gate is not None else None):
        from serving.app import create_app as build

        return build(settings)
