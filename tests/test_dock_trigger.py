"""Presence trigger, identification and the frame loop on simulated dock video.

Counts are asserted against the simulator's ground truth: one inspection per item, fired
while the item rests with no hand in view; none for hands passing by or for flicker.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from returnlens.cli import main
from serving.dock.identify import Identifier, Identity, QrReader, StdinIds
from serving.dock.output import EventLog
from serving.dock.process import Prepared, Preparer
from serving.dock.sim import SimConfig, render_frames, simulate
from serving.dock.source import Backoff, Reader, ResilientSource, SourceFailure, open_reader
from serving.dock.station import Station, Worker
from serving.dock.trigger import PresenceTrigger, State, TriggerConfig
from tests.dock_data import FAST
from vision.errors import ConfigError


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("dock") / "dock.mp4"
    cfg = SimConfig(
        items=3,
        seed=3,
        width=640,
        height=360,
        fps=20,
        hand_passes=2,
        flicker_episodes=2,
        timing=FAST,
        no_qr=(1,),
    )
    return path, simulate(cfg, path)


def _frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out: list[np.ndarray] = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return out
        out.append(frame)


def test_one_inspection_per_item_none_for_hands_or_flicker(video: tuple[Path, dict]) -> None:
    path, truth = video
    trigger = PresenceTrigger()
    fired = [i for i, f in enumerate(_frames(path)) if trigger.update(f).fired]
    assert len(truth["items"]) == 3 and len(truth["hands"]) == 2 and len(truth["flicker"]) == 2
    assert len(fired) == 3
    for item in truth["items"]:
        lo, hi = item["frames"]["clear"]
        assert sum(lo <= i < hi for i in fired) == 1, (item["frames"], fired)


def test_hands_and_flicker_alone_never_trigger() -> None:
    truth, frames = render_frames(
        SimConfig(
            items=0,
            seed=5,
            width=480,
            height=270,
            fps=20,
            hand_passes=4,
            flicker_episodes=3,
            timing=FAST,
        )
    )
    trigger = PresenceTrigger()
    updates = [trigger.update(f) for f in frames]
    assert not any(u.fired for u in updates)
    for a, b in truth["hands"]:  # the hands were seen, they just never came to rest
        assert any(u.state is State.ARRIVING for u in updates[a:b])


def _scene(item_at: tuple[int, int] | None, level: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.clip(150 + rng.normal(0, 2, (120, 160, 3)), 0, 255).astype(np.float32)
    if item_at is not None:
        x, y = item_at
        img[y : y + 30, x : x + 40] = (40, 90, 200)
    return np.clip(img * level, 0, 255).astype(np.uint8)


def test_moving_an_inspected_item_does_not_fire_again() -> None:
    cfg = TriggerConfig(still_frames=3, empty_frames=3)
    trigger = PresenceTrigger(cfg)
    script = (
        [None] * 4
        + [(60, 40)] * 6  # placed: fires once
        + [(70, 45), (80, 50)]
        + [(80, 50)] * 6  # nudged, rests again: no second fire
        + [None] * 5  # removed: re-armed
        + [(30, 30)] * 6
    )  # the next item: fires
    fired = [i for i, pos in enumerate(script) if trigger.update(_scene(pos)).fired]
    assert fired == [7, len(script) - 3]
    assert trigger.fired_count == 2


def test_flicker_is_neither_motion_nor_item() -> None:
    trigger = PresenceTrigger(TriggerConfig(still_frames=2, empty_frames=2))
    levels = [1.0] * 3 + [0.85, 1.12, 0.9, 1.15, 0.8, 1.1] * 3
    updates = [trigger.update(_scene(None, lv)) for lv in levels]
    assert all(u.state is State.EMPTY and not u.fired for u in updates)


def test_trigger_config_is_validated() -> None:
    with pytest.raises(ConfigError):
        TriggerConfig(blur=4)
    with pytest.raises(ConfigError):
        TriggerConfig(min_item_fraction=1.5)


def test_qr_and_fallback_identification(video: tuple[Path, dict]) -> None:
    path, truth = video
    frames = _frames(path)
    qr = QrReader()
    for item in truth["items"]:
        a, b = item["frames"]["rest"]
        found = qr.read(frames[(a + b) // 2])
        assert found == (item["return_id"] if item["qr"] else None)
    no_qr = truth["items"][1]
    rest = [frames[no_qr["frames"]["rest"][0] + 2]]
    stdin = StdinIds(io.StringIO("not an id!\nR-TYPED-7\n")).start()
    typed = Identifier(stdin=stdin, cli_id="R-CLI-1", wait=10.0).identify(rest)
    assert typed == Identity("R-TYPED-7", "stdin")
    assert Identifier(stdin=stdin, cli_id="R-CLI-1").identify(rest) == Identity("R-CLI-1", "cli")
    assert Identifier().identify(rest) == Identity(None, "none")
    # An id typed for an item whose label was readable never sticks to the next item.
    labelled = truth["items"][0]
    stdin.put("R-STALE")
    ident = Identifier(stdin=stdin)
    assert ident.identify([frames[labelled["frames"]["rest"][0] + 2]]).source == "qr"
    assert ident.identify(rest) == Identity(None, "none")
    assert stdin.rejected == ["not an id!"]


def test_labels_the_classic_qr_detector_misses_are_still_read() -> None:
    """Return ids are random, so some labels render as codes OpenCV's classic detector
    cannot find on the simulated dock (this one: on none of the item's still frames); the
    station must still read them, or the item goes to review as unmatched."""
    hard = "ret_9ffa813527a3d9a86f1e5c39"
    cfg = SimConfig(
        items=3,
        seed=12,
        width=640,
        height=360,
        fps=20,
        hand_passes=1,
        flicker_episodes=1,
        timing=FAST,
        return_ids=("ret_a", "ret_b", hard),
    )
    truth, frames = render_frames(cfg)
    a, b = truth["items"][2]["frames"]["rest"]
    still = [f for i, f in enumerate(frames) if a <= i < b]
    classic = cv2.QRCodeDetector()
    assert not any(classic.detectAndDecode(f)[0] for f in still)  # the case this guards
    qr = QrReader()
    assert all(qr.read(f) == hard for f in still)


class Recorder:
    def __init__(self) -> None:
        self.got: list[Prepared] = []

    def submit(self, prepared: Prepared) -> None:
        self.got.append(prepared)


def test_station_on_a_failing_source_inspects_every_item(
    video: tuple[Path, dict], tmp_path: Path
) -> None:
    path, truth = video
    from serving.dock.source import parse_source

    spec = parse_source(str(path))

    def flaky(position: int) -> Reader:  # every reader dies after 40 frames
        inner = open_reader(spec, position)
        left = [40]

        class Dying:
            fps = inner.fps

            def read(self) -> np.ndarray | None:
                if left[0] == 0:
                    raise SourceFailure("stream dropped")
                left[0] -= 1
                return inner.read()

            def close(self) -> None:
                inner.close()

        return Dying()

    waits: list[float] = []
    source = ResilientSource(flaky, finite=True, backoff=Backoff(0.1, 2.0, 1.0), sleep=waits.append)
    sink = Recorder()
    events = EventLog(tmp_path / "events.jsonl")
    worker = Worker(Preparer(Identifier()), sink, events).start()
    stats = Station(source, PresenceTrigger(), worker, events, k=3).run()
    worker.close()
    assert stats.frames == truth["frames"] and source.reconnects >= 5
    assert set(waits) == {0.1}  # each drop recovers at the first try: backoff restarts
    assert [p.identity.return_id for p in sink.got] == ["R3-0001", None, "R3-0003"]
    for p in sink.got:
        assert len(p.capture.frames) == 3  # K sharpest; those failing the dock gate dropped
        assert 1 <= len(p.jpegs) <= 3 and all(p.quality_passed)
        assert all(d[:2] == b"\xff\xd8" for d in p.jpegs)
        assert p.photos[0].width >= 480 and p.photos[0].height == 360
    log = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert sum(r["event"] == "triggered" for r in log) == 3


def test_dock_sim_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim.mp4"
    assert (
        main(
            [
                "dock-sim",
                "--out",
                str(out),
                "--items",
                "1",
                "--size",
                "320x240",
                "--fps",
                "10",
                "--hand-passes",
                "0",
                "--flicker",
                "0",
                "--return-ids",
                "RX-1",
            ]
        )
        == 0
    )
    truth = json.loads(out.with_suffix(".json").read_text())
    assert truth["items"][0]["return_id"] == "RX-1" and truth["width"] == 320
    assert len(_frames(out)) == truth["frames"]
    assert main(["dock-sim", "--out", str(out), "--size", "big"]) == 2
    assert "1280x720" in capsys.readouterr().err


def test_dock_command_refuses_bad_arguments_with_a_sentence(
    video: tuple[Path, dict],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("RETURNLENS_DOCK_KEY", raising=False)
    path, _ = video
    assert main(["dock", "--source", str(path), "--api", "http://127.0.0.1:9"]) == 2
    assert "dock key" in capsys.readouterr().err
    assert (
        main(
            [
                "dock",
                "--source",
                str(tmp_path / "nope.mp4"),
                "--api",
                "http://x",
                "--key",
                "k",
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "[invalid_source]" in capsys.readouterr().err
    assert main(["dock", "--source", str(path), "--standalone", "--k", "9"]) == 2
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    assert (
        main(
            [
                "dock",
                "--source",
                str(path),
                "--api",
                "http://127.0.0.1:9",
                "--key",
                "k",
                "--out",
                str(blocked),
            ]
        )
        == 2
    )
    assert "[spool_unavailable]" in capsys.readouterr().err


def test_output_failures_are_logged_not_raised(tmp_path: Path) -> None:
    from serving.dock.report import Reporter

    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    events = EventLog(blocked / "events.jsonl")  # cannot be created: logged, not raised
    events("hello")
    reporter = Reporter(events, blocked, save_frames=True)
    reporter.report("k1", (b"not a jpeg",), {"inspection_id": "i-1", "grade": "C_good"}, 0.0)
    assert [r["event"] for r in events.records] == ["hello", "result"]
