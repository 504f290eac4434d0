"""End to end: simulated dock video -> station -> a live service on 127.0.0.1.

The service is a real ``uvicorn`` subprocess running ``serving.app:create_app`` on a
SQLite file with the tiny test model (benchmarks/tiny_model.py). Returns are opened through
the API, their ids printed as QR codes in the simulated video, and the station posts its
inspections with a dock key. Checked: every item inspected exactly once with the right
return id; the service's grade equals the dock Grader's and `returnlens grade --item
--profile dock`'s on the very frames posted; with
the API stopped mid-run the spool keeps the inspections and delivers them, without
duplicates, after the API and the station restart.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest

from benchmarks.tiny_model import build_test_model
from returnlens.cli import main
from serving.dock.app import DockOptions, run_station
from serving.dock.identify import QrReader
from serving.dock.sim import SimConfig, plan, simulate
from serving.dock.source import Backoff
from serving.dock.spool import Spool
from tests import live
from tests.dock_data import FAST

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "admin-e2e-secret-0123456789"


class Service:
    """A uvicorn subprocess that can be stopped and started again on the same database."""

    def __init__(self, root: Path, model: Path) -> None:
        self.port = live.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = root / "service.db"
        path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        self.env = {
            **os.environ,
            "PYTHONPATH": path,
            "RETURNLENS_DATABASE_URL": f"sqlite:///{self.db}",
            "RETURNLENS_DATA_DIR": str(root),
            "RETURNLENS_PHOTO_DIR": str(root / "photos"),
            "RETURNLENS_MODEL_PATH": str(model),
            "RETURNLENS_ADMIN_KEY": ADMIN,
            "RETURNLENS_ORT_THREADS": "1",
            "RETURNLENS_LOG_LEVEL": "warning",
        }
        self.log = root / "uvicorn.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = live.uvicorn_argv(self.port)
        self.proc = live.start(argv, env=self.env, cwd=ROOT, log=self.log)
        live.wait_ready(self.proc, self.url, self.log, timeout_s=60)

    def stop(self) -> None:
        if self.proc is not None:
            live.stop(self.proc)
        self.proc = None

    def admin(self, method: str, path: str, json: Any) -> Any:
        r = httpx.request(
            method,
            f"{self.url}{path}",
            json=json,
            timeout=30,
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert r.status_code < 300, r.text
        return r.json()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("service")
    svc = Service(root, tiny_model)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def _open_returns(svc: Service, cfg: SimConfig, tag: str) -> list[str]:
    """Catalog + one delivered order per simulated item, then a return for each."""
    from vision.synth import catalog_skus

    skus = catalog_skus(cfg.seed, 2)
    svc.admin(
        "PUT",
        "/v1/admin/catalog",
        [{"sku": s.sku, "category": s.category, "name": s.name, "price": s.price} for s in skus],
    )
    items = plan(cfg)[2]["items"]
    orders = [
        {
            "order_id": f"ORD-{tag}-{i}",
            "customer_id": f"C-{tag}",
            "customer_email": "dock@example.com",
            "sku": it["sku"],
            "price": it["price"],
            "delivered_at": "2099-01-01T00:00:00Z",
        }
        for i, it in enumerate(items)
    ]
    svc.admin("PUT", "/v1/admin/orders", orders)
    ids = []
    for o in orders:
        r = httpx.post(
            f"{svc.url}/v1/returns",
            timeout=30,
            json={
                "order_id": o["order_id"],
                "email": "dock@example.com",
                "sku": o["sku"],
                "reason": "changed_mind",
            },
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["return_id"])
    return ids


def _dock_key(svc: Service, name: str) -> str:
    return str(svc.admin("POST", "/v1/admin/api-keys", {"name": name, "role": "dock"})["key"])


def _video(tmp: Path, svc: Service, seed: int, tag: str) -> tuple[Path, dict[str, Any]]:
    base = SimConfig(
        items=3,
        seed=seed,
        width=640,
        height=360,
        fps=20,
        hand_passes=1,
        flicker_episodes=1,
        timing=FAST,
    )
    ids = _open_returns(svc, base, tag)
    cfg = dataclasses.replace(base, return_ids=tuple(ids))
    path = tmp / f"dock-{tag}.mp4"
    return path, simulate(cfg, path)


def _stored(svc: Service, keys: list[str]) -> list[tuple[str, str | None, str | None]]:
    with sqlite3.connect(svc.db) as db:
        marks = ",".join("?" * len(keys))
        return db.execute(
            f"SELECT idempotency_key, return_id, grade FROM inspections "
            f"WHERE idempotency_key IN ({marks})",
            keys,
        ).fetchall()


def _results(out: Path) -> list[dict[str, Any]]:
    import json

    lines = (out / "events.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "result"]


def _cli_grade(model: str, frames: list[Path], capsys: pytest.CaptureFixture[str]) -> str:
    """The item grade that `returnlens grade --item --profile dock` gives these files."""
    import json

    capsys.readouterr()
    assert (
        main(
            ["grade", "--json", "--item", "--profile", "dock", "--model", model, *map(str, frames)]
        )
        == 0
    )
    entries = json.loads(capsys.readouterr().out)["results"]
    return str(next(e for e in entries if e["path"] == "item")["scores"]["grade"])


def test_every_item_inspected_once_with_the_service_grade(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vision.pipeline import Grader

    video, truth = _video(tmp_path, service, seed=11, tag="a")
    out = tmp_path / "station"
    summary = run_station(
        DockOptions(
            source=str(video),
            api=service.url,
            key=_dock_key(service, "dock-a"),
            station_id="dock-a",
            out=out,
            save_frames=True,
            drain_timeout=60,
        )
    )
    assert summary["inspections"] == 3 and summary["drained"]
    assert summary["spool"]["delivered"] == 3 and summary["spool"]["pending"] == 0
    results = _results(out)
    expected = [it["return_id"] for it in truth["items"]]
    assert [r["return_id"] for r in results] == expected
    assert all(r["status"] == "matched" for r in results)
    stored = _stored(service, [r["key"] for r in results])
    assert sorted(str(s[1]) for s in stored) == sorted(expected)  # exactly once each
    grader = Grader.load(service.env["RETURNLENS_MODEL_PATH"], profile="dock")
    for r in results:
        frames = sorted((out / "frames" / r["key"]).glob("frame*.jpg"))
        local = grader.grade([f.read_bytes() for f in frames])
        assert local.item is not None and local.item.grade == r["grade"]
        assert _cli_grade(service.env["RETURNLENS_MODEL_PATH"], frames, capsys) == r["grade"]
        label = cv2.imread(str(out / "labels" / f"{r['key']}.png"))
        assert label is not None
        assert QrReader().read(label) == r["inspection_id"]  # both of OpenCV's detectors
        assert (out / "snapshots" / f"{r['key']}.png").is_file()


def test_api_down_mid_run_spools_and_delivers_after_restart(
    service: Service, tmp_path: Path
) -> None:
    video, truth = _video(tmp_path, service, seed=12, tag="b")
    out = tmp_path / "station"
    key = _dock_key(service, "dock-b")
    first_exit = truth["items"][0]["frames"]["exit"][0]
    opts = DockOptions(
        source=str(video),
        api=service.url,
        key=key,
        station_id="dock-b",
        out=out,
        drain_timeout=0.5,
        delivery_backoff=Backoff(0.2, 2.0, 1.0),
    )

    def outage(index: int) -> None:
        if index != first_exit:
            return
        spool = Spool(out / "spool.db")  # wait for the first item's answer, then pull the plug
        deadline = time.monotonic() + 30
        while spool.counts()["delivered"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        spool.close()
        service.stop()

    try:
        first = run_station(opts, on_frame=outage)
    finally:
        service.start()
    assert first["inspections"] == 3
    assert first["spool"]["delivered"] == 1 and first["spool"]["pending"] == 2
    assert not first["drained"]

    second = run_station(dataclasses.replace(opts, max_frames=1, drain_timeout=60))
    assert second["inspections"] == 0 and second["spool"]["delivered"] == 3
    assert second["spool"]["pending"] == 0
    keys = Spool(out / "spool.db").keys()
    stored = _stored(service, keys)
    assert len(stored) == 3 and sorted(k for k, _, _ in stored) == sorted(keys)
    assert sorted(str(r) for _, r, _ in stored) == sorted(it["return_id"] for it in truth["items"])
    assert len(_results(out)) == 3  # one result per inspection across both runs


def test_standalone_command_grades_locally_like_the_grader(tmp_path: Path) -> None:
    from vision.pipeline import Grader

    model = build_test_model(tmp_path / "model.onnx")
    video = tmp_path / "dock.mp4"
    truth = simulate(
        SimConfig(
            items=2,
            seed=13,
            width=640,
            height=360,
            fps=20,
            hand_passes=1,
            flicker_episodes=0,
            timing=FAST,
            no_qr=(1,),
        ),
        video,
    )
    out = tmp_path / "station"
    assert (
        main(
            [
                "dock",
                "--source",
                str(video),
                "--standalone",
                "--model",
                str(model),
                "--out",
                str(out),
                "--price",
                "80",
                "--return-id",
                "R-TYPED",
                "--no-stdin",
                "--save-frames",
                "--quiet",
            ]
        )
        == 0
    )
    results = _results(out)
    assert [r["return_id"] for r in results] == [truth["items"][0]["return_id"], "R-TYPED"]
    spool = Spool(out / "spool.db")
    assert spool.counts()["delivered-local"] == 2
    grader = Grader.load(model, profile="dock")
    for r in results:
        stored = spool.result(r["key"])
        assert stored is not None and stored["channel"] and stored["tier"] == r["tier"]
        frames = sorted((out / "frames" / r["key"]).glob("frame*.jpg"))
        local = grader.grade([f.read_bytes() for f in frames])
        assert local.item is not None and local.item.grade == stored["grade"]
