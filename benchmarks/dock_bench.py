"""Dock station benchmark: watch-loop fps and item-at-rest -> result latency.

    python benchmarks/dock_bench.py [--model PATH] [--items 4] [--out benchmarks/results/dock.json]

1. **Watch-loop fps** on simulated 1080p and 720p video (mp4v), unpaced: decode +
   presence trigger + K-sharpest selection, i.e. what the frame loop does for every frame
   (captures go to the real worker; in this part its sink only records them). Decode-only
   fps is reported beside it, so the trigger's own cost is visible.
2. **Latency** from the trigger firing (the item has come to rest and the configured
   stillness wait is over) to the result, with the source paced at the video's real fps
   like a camera:
   * ``standalone``: identify (QR) + crop + JPEG + dock quality gate + local grading +
     dock policy + spool write;
   * ``api``: the same up to the spool, then POST to a live ``uvicorn`` service on
     127.0.0.1 (same model) that decodes, grades, decides and stores, until the station
     has the answer.
   Stage timings of the station side (identify / prepare) are reported per inspection.

The model is ``--model``, else the shipped default model, else the tiny test model from
benchmarks/tiny_model.py (then the latency says little about a real backbone, and the JSON
says so). Results go to ``benchmarks/results/dock.json``; videos to
``benchmarks/results/tmp/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving.dock.app import DockOptions, run_station  # noqa: E402
from serving.dock.identify import Identifier  # noqa: E402
from serving.dock.output import EventLog  # noqa: E402
from serving.dock.process import Prepared, Preparer  # noqa: E402
from serving.dock.sim import SimConfig, simulate  # noqa: E402
from serving.dock.source import ResilientSource, parse_source  # noqa: E402
from serving.dock.station import Station, Worker  # noqa: E402
from serving.dock.trigger import PresenceTrigger  # noqa: E402


class Recorder:
    def __init__(self) -> None:
        self.got: list[Prepared] = []

    def submit(self, prepared: Prepared) -> None:
        self.got.append(prepared)


def _video(size: tuple[int, int], items: int, tmp: Path) -> tuple[Path, dict[str, Any]]:
    path = tmp / f"dock_{size[0]}x{size[1]}.mp4"
    truth = simulate(
        SimConfig(
            items=items,
            seed=21,
            width=size[0],
            height=size[1],
            fps=25,
            hand_passes=2,
            flicker_episodes=1,
        ),
        path,
    )
    return path, truth


def decode_fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path))
    n, start = 0, time.perf_counter()
    while cap.read()[0]:
        n += 1
    cap.release()
    return n / (time.perf_counter() - start)


def watch_fps(path: Path, truth: dict[str, Any]) -> dict[str, Any]:
    sink = Recorder()
    events = EventLog(None)
    worker = Worker(Preparer(Identifier()), sink, events).start()
    stats = Station(
        ResilientSource.from_spec(parse_source(str(path))), PresenceTrigger(), worker, events
    ).run()
    worker.close()
    return {
        "frames": stats.frames,
        "seconds": round(stats.seconds, 3),
        "watch_fps": round(stats.fps, 1),
        "decode_only_fps": round(decode_fps(path), 1),
        "inspections": stats.inspections,
        "items": len(truth["items"]),
        "identified": sum(p.identity.source == "qr" for p in sink.got),
    }


def _pace(fps: float) -> Any:
    start = time.perf_counter()

    def on_frame(index: int) -> None:  # behave like a live camera: one frame every 1/fps s
        wait = start + (index + 1) / fps - time.perf_counter()
        if wait > 0:
            time.sleep(wait)

    return on_frame


def _latencies(out: Path) -> dict[str, Any]:
    records = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    lat = [r["latency_ms"] for r in records if r["event"] == "result"]
    if not lat:
        return {"n": 0}
    lat.sort()
    return {
        "n": len(lat),
        "p50_ms": round(statistics.median(lat), 1),
        "p95_ms": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1),
        "max_ms": round(lat[-1], 1),
        "all_ms": lat,
    }


def latency_standalone(video: Path, model: Path, tmp: Path) -> dict[str, Any]:
    out = tmp / "standalone"
    run_station(
        DockOptions(source=str(video), out=out, model=model, price=50.0), on_frame=_pace(25.0)
    )
    return _latencies(out)


def latency_api(video: Path, model: Path, tmp: Path) -> dict[str, Any]:
    import httpx

    port = 18000 + os.getpid() % 1000
    url, admin = f"http://127.0.0.1:{port}", "bench-admin-key-0123456789"
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "RETURNLENS_MODEL_PATH": str(model),
        "RETURNLENS_DATABASE_URL": f"sqlite:///{tmp / 'svc.db'}",
        "RETURNLENS_DATA_DIR": str(tmp),
        "RETURNLENS_PHOTO_DIR": str(tmp / "photos"),
        "RETURNLENS_ADMIN_KEY": admin,
        "RETURNLENS_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "serving.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        key = httpx.post(
            f"{url}/v1/admin/api-keys",
            json={"name": "bench", "role": "dock"},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=30,
        ).json()["key"]
        out = tmp / "api"
        run_station(DockOptions(source=str(video), api=url, key=key, out=out), on_frame=_pace(25.0))
        return _latencies(out)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def stage_times(video: Path, repeat: int = 5) -> dict[str, Any]:
    """Station-side stages on the real captures (K=3 frames + item box at each trigger):
    QR identify alone, and prepare = identify beside crop + JPEG + decode + dock gate x3."""
    from serving.dock.process import Capture

    cap = cv2.VideoCapture(str(video))
    trigger, captures, index = PresenceTrigger(), [], 0
    last: list[Any] = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        update = trigger.update(frame)
        last = [*last, frame][-3:]
        if update.fired:
            captures.append(Capture(frames=tuple(last), box=update.bbox, frame_index=index))
        index += 1
    prep = Preparer(Identifier())
    prep.prepare(captures[0])  # warm the thread pool
    t_id, t_prep = [], []
    for c in captures * repeat:
        t0 = time.perf_counter()
        Identifier().identify(c.frames, c.box)
        t1 = time.perf_counter()
        prep.prepare(c)
        t_id.append((t1 - t0) * 1000)
        t_prep.append((time.perf_counter() - t1) * 1000)
    return {
        "n": len(t_id),
        "identify_ms_median": round(statistics.median(t_id), 1),
        "prepare_ms_median": round(statistics.median(t_prep), 1),
        "prepare_ms_max": round(max(t_prep), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--items", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/dock.json")
    ap.add_argument("--skip-api", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the videos and station outputs")
    args = ap.parse_args()
    from serving.models import default_model_path

    model, model_kind = args.model, "given"
    if model is None and default_model_path().is_file():
        model, model_kind = default_model_path(), "shipped default"
    tmp_root = ROOT / "benchmarks/results/tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="dock-", dir=tmp_root))
    if model is None:
        from benchmarks.tiny_model import build_test_model

        model, model_kind = build_test_model(tmp / "test-model.onnx"), "tiny test model"
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "opencv": cv2.__version__,
            "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "model": {"path": str(model), "kind": model_kind},
        "fps": {},
    }
    videos = {}
    for name, size in (("1080p", (1920, 1080)), ("720p", (1280, 720))):
        videos[name], truth = _video(size, args.items, tmp)
        result["fps"][name] = watch_fps(videos[name], truth)
        print(name, result["fps"][name], flush=True)
    result["stages"] = {name: stage_times(path) for name, path in videos.items()}
    result["latency"] = {"standalone_720p": latency_standalone(videos["720p"], model, tmp)}
    print("stages", result["stages"], "standalone", result["latency"], flush=True)
    if not args.skip_api:
        result["latency"]["api_720p"] = latency_api(videos["720p"], model, tmp)
        print("api", result["latency"]["api_720p"], flush=True)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["note"] = (
        "latency = trigger fired (stillness wait over) -> result at the station; "
        "source paced at 25 fps like a live camera"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
