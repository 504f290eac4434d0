"""Background jobs (``serving.services.jobs``): huey queue, ``jobs`` rows, sweep, worker.

Handlers and the row bookkeeping are tested in huey's immediate mode (each job runs in
the enqueuing thread, in memory), on SQLite and PostgreSQL (``db_url``). The worker is
tested as a real ``returnlens jobs worker`` process on a SQLite queue: it delivers an
outbox event, and a worker SIGKILLed in the middle of a delivery loses nothing (the next
worker's sweep re-enqueues the job, and the receiver sees one event id). Waits poll a
condition against a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from returnlens.cli import main
from serving.app import create_app
from serving.services.jobs import open_queue
from serving.services.outbox import emit
from serving.settings import Settings
from serving.storage import jobs as job_store
from serving.storage.db import Database
from serving.storage.tables import Job, OutboxDelivery
from tests.outbox_targets import Receiver
from tests.shop import ADMIN_KEY, make_settings

SECRET = "whsec-test-0123456789"
REPO = Path(__file__).resolve().parents[1]


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _settings(db_url: str, tmp_path: Path, receiver: Receiver, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "data_dir": tmp_path,
        "photo_dir": tmp_path / "photos",
        "webhook_url": receiver.url,
        "webhook_secret": SECRET,
        "job_retries": 2,
        "job_retry_delay_s": 0,
    }
    values.update(over)
    return Settings(**values)


def _emit_one(db: Database) -> str:
    with db.write() as s:
        return emit(
            s, type="return.created", return_id=None, payload={"n": 1}, now=datetime.now(UTC)
        )


def _jobs(db: Database) -> list[Job]:
    with db.read() as s:
        return list(s.scalars(select(Job).order_by(Job.enqueued_at)).all())


def test_delivery_job_twice_delivers_once(db_url: str, tmp_path: Path, receiver: Receiver) -> None:
    db = Database(db_url)
    queue = open_queue(_settings(db_url, tmp_path, receiver), db, immediate=True)
    try:
        event_id = _emit_one(db)
        first, second = queue.enqueue("deliver-outbox"), queue.enqueue("deliver-outbox")
        assert receiver.event_ids() == [event_id]  # the second run found nothing due
        rows = {j.id: j for j in _jobs(db)}
        assert {rows[first].status, rows[second].status} == {"done"}
        assert rows[first].attempts == rows[second].attempts == 1
        assert queue.sweep() == []  # nothing due any more
    finally:
        queue.close()
        db.dispose()


def test_failing_job_stops_after_retries_and_is_listed(
    db_url: str,
    tmp_path: Path,
    receiver: Receiver,
    tiny_model: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    db = Database(db_url)
    queue = open_queue(_settings(db_url, tmp_path, receiver), db, immediate=True)
    try:
        job_id = queue.enqueue("export-reviewed", out=str(blocker / "export"))
    finally:
        queue.close()
        db.dispose()
    monkeypatch.setenv("RETURNLENS_DATABASE_URL", db_url)
    monkeypatch.setenv("RETURNLENS_DATA_DIR", str(tmp_path))
    out = tmp_path / "list.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stdout", out.open("w"))
        assert main(["jobs", "list", "--status", "failed", "--json"]) == 0
        sys.stdout.close()
    listed = json.loads(out.read_text())
    (job,) = listed["jobs"]
    assert job["id"] == job_id and job["status"] == "failed"
    assert job["attempts"] == 3  # the first run and job_retries=2 more
    assert "Error" in job["last_error"]  # e.g. NotADirectoryError: ...
    assert listed["queue"]["backend"] == "sqlite" and listed["queue"]["jobs"] == {"failed": 1}

    settings = make_settings(db_url, tmp_path, tiny_model)
    admin = {"X-API-Key": ADMIN_KEY}
    with TestClient(create_app(settings)) as client:
        r = client.get("/v1/admin/jobs", params={"status": "failed"}, headers=admin)
        assert r.status_code == 200, r.text
        (api_job,) = r.json()["jobs"]
        assert api_job["id"] == job_id and api_job["last_error"] == job["last_error"]
        assert client.get("/v1/admin/jobs").status_code == 401
        ready = client.get("/readyz").json()
        assert ready["jobs"]["reachable"] is True and ready["jobs"]["jobs"] == {"failed": 1}


def test_sweep_requeues_lost_jobs_and_due_work(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    db = Database(db_url)
    settings = _settings(db_url, tmp_path, receiver)
    queue = open_queue(settings, db)  # not immediate: enqueued jobs wait in the queue
    try:
        event_id = _emit_one(db)
        assert queue.sweep() == ["deliver-outbox"]
        assert queue.sweep() == []  # one is waiting already
        now = datetime.now(UTC)
        with db.write() as s:  # a job whose worker died mid-run, its lease over
            job_store.started(
                s, "lost-1", "expire-returns", {}, now=now, lease_until=now, worker="gone:1"
            )
        assert queue.sweep() == ["expire-returns"]
        with db.read() as s:
            lost = s.get(Job, "lost-1")
            assert lost is not None and lost.status == "queued" and lost.attempts == 1
        assert queue.state().waiting == 2
        assert receiver.event_ids() == [] and event_id
    finally:
        queue.close()
        db.dispose()


# ------------------------------------------------------------------ a real worker
def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "returnlens", "jobs", "worker"],
        cwd=REPO,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _delivery(db: Database, event_id: str) -> OutboxDelivery:
    with db.read() as s:
        row = s.scalars(
            select(OutboxDelivery).where(
                OutboxDelivery.event_id == event_id, OutboxDelivery.channel == "webhook"
            )
        ).one()
        return row


@pytest.mark.slow
def test_worker_killed_mid_delivery_loses_nothing(tmp_path: Path, receiver: Receiver) -> None:
    db_url = f"sqlite:///{tmp_path / 'returnlens.db'}"
    db = Database(db_url)
    db.upgrade()
    env = {
        **os.environ,
        "RETURNLENS_DATABASE_URL": db_url,
        "RETURNLENS_DATA_DIR": str(tmp_path),
        "RETURNLENS_JOB_QUEUE": f"sqlite:///{tmp_path / 'queue.db'}",
        "RETURNLENS_WEBHOOK_URL": receiver.url,
        "RETURNLENS_WEBHOOK_SECRET": SECRET,
        "RETURNLENS_WEBHOOK_TIMEOUT_S": "15",
        "RETURNLENS_JOB_SWEEP_SECONDS": "1",
        "RETURNLENS_JOB_POLL_S": "0.2",
        "RETURNLENS_LOG_LEVEL": "info",
    }
    log = tmp_path / "worker.log"
    receiver.hold = True  # the first delivery hangs until released
    event_id = _emit_one(db)
    first = _worker(env, log)
    try:
        wait_for(lambda: receiver.requests, what="the first worker's delivery")
        (job,) = _jobs(db)
        assert job.name == "deliver-outbox" and job.status == "running"
        os.killpg(first.pid, signal.SIGKILL)  # mid-send: the queue already dropped the task
        first.wait(10)
        assert _delivery(db, event_id).status == "pending"
        # Time passes beyond both leases (the outbox claim's and the job's): stepped in
        # the rows rather than waited for (the outbox lease is 4 x timeout + 30 s).
        past = datetime.now(UTC) - timedelta(seconds=1)
        with db.write() as s:
            s.execute(update(OutboxDelivery).values(claimed_until=past))
            s.execute(update(Job).values(lease_until=past))
        receiver.hold = False
        receiver.release.set()

        second = _worker(env, log)
        try:
            wait_for(
                lambda: _delivery(db, event_id).status == "delivered",
                what="the second worker's delivery",
            )
            wait_for(lambda: all(j.status == "done" for j in _jobs(db)), what="jobs done")
        finally:
            _stop(second)
        assert set(receiver.event_ids()) == {event_id}  # one event, as the receiver dedupes
        assert _delivery(db, event_id).attempts == 1  # the killed attempt recorded nothing
        lost = next(j for j in _jobs(db) if j.id == job.id)
        assert lost.attempts == 2  # the lost run, then again under the same id
    finally:
        _stop(first, signal.SIGKILL)
        db.dispose()
        print(log.read_text())
