"""The two servers a scaled-out ReturnLens runs on, started on one machine for a try-out
or a test: PostgreSQL 15 (``initdb`` + ``pg_ctl``) and SeaweedFS's ``weed mini`` (S3).

Both listen on 127.0.0.1 only, keep their data in a folder given by the caller and can be
stopped and started again on it (a cluster survives ``make cluster-stop``/``make
cluster``). initdb refuses to run as root, so as root the PostgreSQL folder is handed to
the ``postgres`` user and its binaries run through ``runuser``.

The test suite's throwaway servers (``tests/pg.py``, ``tests/s3.py``) are the same
servers; these classes are the runtime ones ``returnlens cluster`` manages.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PG_BIN = Path(os.environ.get("RETURNLENS_PG_BIN", "/usr/lib/postgresql/15/bin"))
WEED = Path(os.environ.get("RETURNLENS_WEED", Path(sys.executable).parent / "weed"))
PG_USER = "postgres"
POLL_S = 0.2  # readiness polling interval, not a timing guess


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else "(no log)"


def _as_pg_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", PG_USER, "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], timeout: float = 120) -> None:
    proc = subprocess.run(_as_pg_user(cmd), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")


@dataclass
class Postgres:
    """One PostgreSQL cluster in ``root`` on ``port``, with the database ``returnlens``."""

    root: Path
    port: int
    durable: bool = True  # False: fsync off, for a throwaway (the test suite's)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "returnlens") -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """initdb on first use, then ``pg_ctl start`` (waits until it accepts)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(PG_USER)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        fresh = not (self.data / "PG_VERSION").is_file()
        if fresh:
            initdb = [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", PG_USER]
            sync = [] if self.durable else ["--no-sync"]
            _run([*initdb, "-A", "trust", "-E", "UTF8", "--locale=C", *sync])
            (self.data / "pg_hba.conf").write_text(
                "local all all trust\nhost all all 127.0.0.1/32 trust\n"
            )
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} "
            f"-c unix_socket_directories={self.root} -c max_connections=100"
        )
        if not self.durable:
            opts += " -F -c synchronous_commit=off -c full_page_writes=off"
        log = str(self.root / "server.log")
        _run(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                opts,
                "-w",
                "-t",
                "60",
                "-l",
                log,
                "start",
            ]
        )
        if fresh:
            self.execute("CREATE DATABASE returnlens")

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=PG_USER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]  # fixed DDL, no user input

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").is_file():
            _run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])


WEED_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


@dataclass
class ObjectStore:
    """SeaweedFS ``weed mini`` (master, volume, filer, S3 gateway) on loopback ports."""

    root: Path
    ports: dict[str, int]
    access_key: str
    secret_key: str
    start_timeout_s: float = 90.0

    @classmethod
    def new(cls, root: Path, access_key: str, secret_key: str) -> ObjectStore:
        return cls(root, {name: free_port() for name in WEED_PORTS}, access_key, secret_key)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def argv(self) -> list[str]:
        return [
            str(WEED),
            "mini",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{name}={port}" for name, port in self.ports.items()),
            f"-s3.config={self.root / 's3.json'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.localSocket={self.root / 's3.sock'}",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            "-s3.autoCreateBucket=false",
        ]

    def client(self, **overrides: Any) -> Any:
        """A boto3 S3 client for this server (set-up, inspection); ``overrides`` replace
        any of boto3.client's arguments (a test's wrong key, say)."""
        import boto3
        from botocore.config import Config

        args: dict[str, Any] = dict(
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=10,
            ),
        )
        return boto3.client("s3", **{**args, **overrides})

    def start(self) -> subprocess.Popen[bytes]:
        """Start the process (detached: it outlives the command) and wait until a write
        goes through (S3 answers before the volume server has joined)."""
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        identity = {
            "name": "returnlens",
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
        }
        (self.root / "s3.json").write_text(json.dumps({"identities": [identity]}))
        log = (self.root / "weed.log").open("ab")
        proc = subprocess.Popen(
            self.argv(),
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"weed mini exited: {log_tail(self.root / 'weed.log')}")
            try:
                self._probe()
                return proc
            except Exception:  # not up yet
                time.sleep(POLL_S)
        proc.kill()
        raise RuntimeError(f"weed mini was not ready: {log_tail(self.root / 'weed.log')}")

    def _probe(self) -> None:
        client, probe = self.client(), f"probe-{uuid.uuid4().hex[:8]}"
        client.create_bucket(Bucket=probe)
        client.put_object(Bucket=probe, Key="probe", Body=b"ok")
        client.delete_object(Bucket=probe, Key="probe")
        client.delete_bucket(Bucket=probe)

    def ensure_bucket(self, name: str) -> None:
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if name not in existing:
            client.create_bucket(Bucket=name)
