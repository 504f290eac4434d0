"""``returnlens serve`` with several workers: the process it started becomes a light
supervisor (``serving/commands/supervise.py``) and the workers hold the service.

Read from ``/proc``: which shared libraries each process has mapped, and its command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from tests import live

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads processes from Linux's /proc"
)


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [int(c) for t in tasks for c in (t / "children").read_text().split()]


def test_the_supervisor_holds_none_of_the_service(tmp_path: Path, tiny_model: Path) -> None:
    port = live.free_port()
    env = live.clean_env(tmp_path, workers="2", ort_threads="1")
    argv = live.serve_argv(port, f"sqlite:///{tmp_path / 'w.db'}", tiny_model)
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with live.running(argv, base=base, env=env, cwd=tmp_path, log=log, timeout_s=120) as (
        proc,
        url,
    ):
        # The same pid, now the supervisor: signals and process managers see no change.
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"serving.commands.supervise" in cmdline
        assert b"--workers" in cmdline and cmdline[cmdline.index(b"--workers") + 1] == b"2"
        assert "onnxruntime" not in _maps(proc.pid)
        assert "cv2" not in _maps(proc.pid)
        workers = [c for c in _children(proc.pid) if "onnxruntime" in _maps(c)]
        assert len(workers) == 2  # each worker loaded the model itself
        r = httpx.get(f"{url}/v1/model", timeout=10)
        assert r.status_code == 200 and r.json()["model_version"]
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, live.log_tail(log)
    assert "2 worker(s)" in text  # the banner, printed before the exec, reached the log
