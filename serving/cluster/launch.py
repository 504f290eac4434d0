"""``make cluster``: what a production deployment runs, started on one machine.

PostgreSQL (the database, the shared rate-limit counters and the job queue), SeaweedFS
(the S3 photo store), N stateless API replicas (``returnlens serve`` on their own ports,
each one uvicorn worker) and one job worker (``returnlens jobs worker``). Everything
listens on 127.0.0.1, keeps its data under ``root`` (default ``var/cluster``) and is
detached from the command that started it; ``cluster.json`` there records the ports,
the process ids and the generated admin key and S3 secret (owner-only file), so
``returnlens cluster down`` stops exactly what ``up`` started, and ``up`` again restarts
it on the same data.

Each replica is given the same settings through its environment (the only way a
replica is configured in production too): the PostgreSQL URL, ``RETURNLENS_PHOTO_STORE=
s3`` with the bucket, endpoint and keys, ``RETURNLENS_JOB_QUEUE`` on the same database
and ``RETURNLENS_RATE_LIMIT_STORAGE=database``. The schema is migrated once before any
replica starts; the first replica seeds the demo shop when asked.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from serving.cluster.servers import POLL_S, ObjectStore, Postgres, free_port, log_tail

BUCKET = "returnlens"
READY_TIMEOUT_S = 120.0


@dataclass
class ClusterState:
    """What ``up`` started; saved as ``root/cluster.json``."""

    root: str
    pg_port: int
    s3_ports: dict[str, int]
    s3_access_key: str
    s3_secret_key: str
    admin_key: str
    replica_ports: list[int]
    pids: dict[str, int] = field(default_factory=dict)  # replica-1.., worker, s3

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.replica_ports]

    def postgres(self) -> Postgres:
        return Postgres(Path(self.root) / "pg", self.pg_port)

    def store(self) -> ObjectStore:
        return ObjectStore(
            Path(self.root) / "s3", self.s3_ports, self.s3_access_key, self.s3_secret_key
        )

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment every replica and the worker get."""
        url = self.postgres().url()
        return {
            **os.environ,
            "RETURNLENS_DATABASE_URL": url,
            "RETURNLENS_PHOTO_STORE": "s3",
            "RETURNLENS_S3_BUCKET": BUCKET,
            "RETURNLENS_S3_ENDPOINT_URL": self.store().endpoint,
            "RETURNLENS_S3_ACCESS_KEY_ID": self.s3_access_key,
            "RETURNLENS_S3_SECRET_ACCESS_KEY": self.s3_secret_key,
            "RETURNLENS_JOB_QUEUE": url.replace("+psycopg", ""),
            "RETURNLENS_RATE_LIMIT_STORAGE": "database",
            "RETURNLENS_ADMIN_KEY": self.admin_key,
            "RETURNLENS_MIGRATE_ON_START": "false",
            **(extra or {}),
        }

    def save(self) -> None:
        path = Path(self.root) / "cluster.json"
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)

    @classmethod
    def load(cls, root: Path) -> ClusterState | None:
        path = root / "cluster.json"
        return cls(**json.loads(path.read_text())) if path.is_file() else None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _returnlens(*args: str) -> list[str]:
    return [sys.executable, "-m", "returnlens", *args]


def _spawn(argv: list[str], env: Mapping[str, str], log: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return proc.pid


def wait_ready(url: str, pid: int, log: Path, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll ``/readyz`` until 200; RuntimeError with the log's tail if it dies or stalls."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise RuntimeError(f"{url} exited during start-up:\n{log_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        time.sleep(POLL_S)
    raise RuntimeError(f"{url} was not ready within {timeout_s:.0f} s:\n{log_tail(log)}")


def _new_state(root: Path, replicas: int) -> ClusterState:
    return ClusterState(
        root=str(root.resolve()),
        pg_port=free_port(),
        s3_ports=ObjectStore.new(root / "s3", "", "").ports,
        s3_access_key="returnlens",
        s3_secret_key=secrets.token_urlsafe(24),
        admin_key=secrets.token_urlsafe(32),
        replica_ports=[free_port() for _ in range(replicas)],
    )


def start_replica(state: ClusterState, index: int, extra: Mapping[str, str] | None = None) -> None:
    """Start replica ``index`` (0-based) and wait until it is ready."""
    name, port = f"replica-{index + 1}", state.replica_ports[index]
    env = {**state.env(extra), "RETURNLENS_DATA_DIR": str(Path(state.root) / name)}
    log = Path(state.root) / "logs" / f"{name}.log"
    argv = _returnlens("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
    state.pids[name] = _spawn(argv, env, log)
    wait_ready(state.urls[index], state.pids[name], log)


def up(
    root: Path,
    *,
    replicas: int = 2,
    seed_demo: bool = True,
    extra_env: Mapping[str, str] | None = None,
) -> ClusterState:
    """Start (or restart on its data) the cluster in ``root``; returns its state."""
    from serving.storage.db import Database

    root.mkdir(parents=True, exist_ok=True)
    state = ClusterState.load(root) or _new_state(root, replicas)
    if any(_alive(pid) for pid in state.pids.values()):
        raise RuntimeError(f"a cluster is already running in {root}: stop it first")
    state.pids = {}
    state.postgres().start()
    state.pids["s3"] = state.store().start().pid
    state.store().ensure_bucket(BUCKET)
    state.save()
    db = Database(state.postgres().url())
    try:
        db.upgrade()
    finally:
        db.dispose()
    for i in range(len(state.replica_ports)):
        seed = {"RETURNLENS_SEED_DEMO": "true" if seed_demo and i == 0 else "false"}
        start_replica(state, i, {**seed, **(extra_env or {})})
        state.save()
    log = Path(state.root) / "logs" / "worker.log"
    state.pids["worker"] = _spawn(_returnlens("jobs", "worker"), state.env(extra_env), log)
    state.save()
    return state


def kill(state: ClusterState, name: str, sig: int = signal.SIGTERM) -> None:
    """Signal one process of the cluster (its whole session: uvicorn and its children)."""
    pid = state.pids.get(name)
    if pid and _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)


def down(root: Path, timeout_s: float = 30.0) -> bool:
    """Stop what ``up`` started in ``root``; False when nothing was recorded there."""
    state = ClusterState.load(root)
    if state is None:
        return False
    for name in [n for n in state.pids if n != "s3"] + ["s3"]:
        kill(state, name)
    deadline = time.monotonic() + timeout_s
    while any(_alive(p) for p in state.pids.values()) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    for name in state.pids:
        kill(state, name, signal.SIGKILL)
    state.postgres().stop()
    state.pids = {}
    state.save()
    return True


def status(root: Path) -> dict[str, Any]:
    """Each process's liveness and each replica's readiness, for ``cluster status``."""
    state = ClusterState.load(root)
    if state is None:
        return {"running": False, "root": str(root)}
    ready = {}
    for url in state.urls:
        try:
            ready[url] = httpx.get(f"{url}/readyz", timeout=2.0).json()
        except (httpx.HTTPError, ValueError) as exc:
            ready[url] = {"ready": False, "error": type(exc).__name__}
    return {
        "running": any(_alive(p) for p in state.pids.values()),
        "root": state.root,
        "processes": {n: {"pid": p, "alive": _alive(p)} for n, p in state.pids.items()},
        "replicas": ready,
        "database": state.postgres().url(),
        "s3": state.store().endpoint,
    }
