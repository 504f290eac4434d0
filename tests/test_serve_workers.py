"""``returnlens serve`` with several workers: the process it started becomes a light
supervisor (``serving/commands/supervise.py``), the start-up checks run in a process of
their own beside the workers' start (``serving/commands/startcheck.py``), and the workers
hold the service.

Read from ``/proc``: which shared libraries each process has mapped, and its command line.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests import live

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads processes from Linux's /proc"
)


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:  # a child that exited meanwhile (the start-up checks' process)
        return ""


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # a thread that ended meanwhile
            continue
    return out


def _loaded(supervisor: int) -> list[int]:
    """The supervisor's children that have the model's runtime mapped."""
    return [c for c in _children(supervisor) if "onnxruntime" in _maps(c)]


def _shadow_with_other_grades(tmp_path: Path, model: Path) -> Path:
    """A copy of ``model`` whose card lists its grades in reverse: a challenger that
    cannot run beside it."""
    import dataclasses
    import shutil

    from vision.registry import card_of, write_card

    shadow = tmp_path / "shadow.onnx"
    shutil.copyfile(model, shadow)
    card = card_of(shadow)
    write_card(shadow, dataclasses.replace(card, grade_labels=tuple(reversed(card.grade_labels))))
    return shadow


def test_the_supervisor_holds_none_of_the_service(tmp_path: Path, tiny_model: Path) -> None:
    port = live.free_port()
    tmp = tmp_path / "tmp"  # where `serve` makes its start gate's folder
    tmp.mkdir()
    env = {**live.clean_env(tmp_path, workers="2", ort_threads="1"), "TMPDIR": str(tmp)}
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
        # Each worker loads the model itself; they import the service one at a time
        # (serving/asgi.py), so the second may still be on its way when /readyz answers.
        deadline = time.monotonic() + 120
        while len(_loaded(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(live.POLL_S)
        assert len(_loaded(proc.pid)) == 2
        r = httpx.get(f"{url}/v1/model", timeout=10)
        assert r.status_code == 200 and r.json()["model_version"]
        assert [p.name for p in tmp.glob("returnlens-start-*/*")] == ["checked", "import.lock"]
    assert not list(tmp.glob("returnlens-start-*"))  # removed when the server stops
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, live.log_tail(log)
    assert "2 worker(s)" in text  # the banner, printed before the exec, reached the log


def test_a_failed_check_stops_every_worker_with_one_sentence(
    tmp_path: Path, tiny_model: Path
) -> None:
    """The checks run while the workers start: a policy that cannot load is still one
    sentence and exit status 2, and no worker is left serving."""
    port = live.free_port()
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: broken\n")
    env = live.clean_env(tmp_path, workers="2", ort_threads="1", policy_path=str(policy))
    argv = live.serve_argv(port, f"sqlite:///{tmp_path / 'w.db'}", tiny_model)
    proc = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, timeout=120)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert "error: policy file" in err and "[invalid_config]" in err
    assert "Traceback" not in err + proc.stdout.decode()
    with socket.socket() as s:  # the port is free again: nobody is listening on it
        s.bind(("127.0.0.1", port))


def test_a_shadow_with_other_labels_stops_the_start(tmp_path: Path, tiny_model: Path) -> None:
    """The checks read the challenger's card too: other grades than the champion's stop
    the start with one sentence, before any worker builds a runtime."""
    shadow = _shadow_with_other_grades(tmp_path, tiny_model)
    port = live.free_port()
    env = live.clean_env(tmp_path, workers="2", ort_threads="1", shadow_model_path=str(shadow))
    argv = live.serve_argv(port, f"sqlite:///{tmp_path / 'w.db'}", tiny_model)
    proc = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, timeout=120)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert "[shadow_labels_differ]" in err and "Traceback" not in err


def test_a_worker_that_cannot_start_makes_the_supervisor_exit_nonzero(
    tmp_path: Path, tiny_model: Path
) -> None:
    """What the start-up checks do not know of fails in a worker's own start; uvicorn
    then stops every worker, and the supervisor must say so in its exit status (3, as
    uvicorn's one-worker ``run``), not exit 0 as if it had been asked to stop. The
    supervisor runs here without the checks' process, so the workers' start is what
    fails: a challenger with other grades than the champion (``build_runtime``)."""
    shadow = _shadow_with_other_grades(tmp_path, tiny_model)
    env = live.clean_env(
        tmp_path,
        workers="2",
        ort_threads="1",
        shadow_model_path=str(shadow),
        model_path=str(tiny_model),
        database_url=f"sqlite:///{tmp_path / 'w.db'}",
    )
    port = live.free_port()
    argv = [sys.executable, "-m", "serving.commands.supervise", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "2", "--log-level", "warning",
            "--limit-concurrency", "100"]  # fmt: skip
    proc = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 3, err[-2000:]
    assert "shadow model" in err
    with socket.socket() as s:  # every worker is gone: the port is free again
        s.bind(("127.0.0.1", port))
