"""Frame sources: reconnect with capped backoff, resume where they were, stop at the end.

The waits are injected (a recording ``sleep``), so the backoff schedule is checked
exactly and nothing sleeps.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from serving.dock.source import (
    Backoff,
    FolderReader,
    Reader,
    ResilientSource,
    SourceFailure,
    SourceSpec,
    open_reader,
    parse_source,
)
from vision.errors import ConfigError


def _folder(path: Path, n: int) -> Path:
    path.mkdir()
    for i in range(n):
        img = np.full((24, 32, 3), i * 10, np.uint8)
        cv2.imwrite(str(path / f"frame{i:04d}.png"), img)
    return path


def _video(path: Path, n: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (64, 48))
    for i in range(n):
        writer.write(np.full((48, 64, 3), (i * 9) % 250, np.uint8))
    writer.release()
    return path


class Flaky:
    """Opener whose first reader dies after ``fail_after`` frames and whose next
    ``bad_opens`` opens fail (a camera that drops off the network for a while)."""

    def __init__(self, spec: SourceSpec, fail_after: int, bad_opens: int) -> None:
        self.spec, self.fail_after, self.bad_opens = spec, fail_after, bad_opens
        self.opens: list[int] = []

    def __call__(self, position: int) -> Reader:
        self.opens.append(position)
        if len(self.opens) == 1:
            inner = open_reader(self.spec, position)
            left = [self.fail_after]

            class Dying:
                fps = inner.fps

                def read(self) -> np.ndarray | None:
                    if left[0] == 0:
                        raise SourceFailure("cable pulled")
                    left[0] -= 1
                    return inner.read()

                def close(self) -> None:
                    inner.close()

            return Dying()
        if len(self.opens) <= 1 + self.bad_opens:
            raise SourceFailure("no route to camera")
        return open_reader(self.spec, position)


def test_parse_source_kinds(tmp_path: Path) -> None:
    assert parse_source("0") == SourceSpec("camera", 0)
    assert parse_source("rtsp://cam.local/stream").kind == "stream"
    assert parse_source("http://cam.local/mjpg").kind == "stream"
    assert parse_source(str(_folder(tmp_path / "f", 1))).kind == "folder"
    assert parse_source(str(_video(tmp_path / "v.mp4", 3))).kind == "file"
    with pytest.raises(ConfigError) as err:
        parse_source(str(tmp_path / "missing.mp4"))
    assert err.value.code == "invalid_source"


def test_backoff_is_exponential_and_capped() -> None:
    b = Backoff(initial=0.5, factor=2.0, maximum=3.0)
    assert [b.delay(i) for i in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_video_read_failure_reconnects_with_backoff_and_resumes(tmp_path: Path) -> None:
    spec = parse_source(str(_video(tmp_path / "v.mp4", 30)))
    flaky = Flaky(spec, fail_after=12, bad_opens=3)
    waits: list[float] = []
    events: list[str] = []
    src = ResilientSource(
        flaky,
        finite=True,
        backoff=Backoff(0.5, 2.0, 1.5),
        sleep=waits.append,
        on_event=lambda kind, **f: events.append(kind),
    )
    frames = list(src.frames())
    assert [f.index for f in frames] == list(range(30))  # nothing lost, nothing repeated
    levels = [int(f.image.mean()) for f in frames]
    # neighbouring frames differ by 9 grey levels: each frame is where it belongs
    assert all(abs(v - (i * 9) % 250) < 4.5 for i, v in enumerate(levels))
    assert waits == [0.5, 1.0, 1.5, 1.5] == src.delays  # three failed opens, then success
    assert flaky.opens == [0, 12, 12, 12, 12]
    assert events.count("source_read_failed") == 1 and events[-1] == "source_ended"
    assert "source_reconnected" in events


def test_folder_renamed_mid_stream_is_recovered(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "frames", 8)
    spec = parse_source(str(folder))
    away = tmp_path / "frames-away"
    waits: list[float] = []

    def sleep(delay: float) -> None:
        waits.append(delay)
        if len(waits) == 2:
            away.rename(folder)  # the share comes back

    src = ResilientSource.from_spec(spec, backoff=Backoff(0.25, 2.0, 10.0), sleep=sleep)
    seen = []
    for frame in src.frames():
        seen.append(int(frame.image.mean()))
        if len(seen) == 3:
            folder.rename(away)  # the network share disappears
    assert seen == [i * 10 for i in range(8)]
    assert waits == [0.25, 0.5]


def test_end_of_file_stops_cleanly_and_loop_replays(tmp_path: Path) -> None:
    spec = parse_source(str(_video(tmp_path / "v.mp4", 5)))
    assert len(list(ResilientSource.from_spec(spec).frames())) == 5
    looped = ResilientSource.from_spec(spec, loop=True)
    got = []
    for frame in looped.frames():
        got.append(frame.index)
        if len(got) == 12:
            looped.stop()
    assert got == list(range(12)) and looped.delays == []


def test_live_source_never_gives_up_until_stopped() -> None:
    waits: list[float] = []

    def never(position: int) -> Reader:
        raise SourceFailure("camera unplugged")

    src = ResilientSource(never, finite=False, backoff=Backoff(1.0, 2.0, 8.0))

    def sleep(delay: float) -> None:
        waits.append(delay)
        if len(waits) == 6:
            src.stop()

    src.sleep = sleep
    assert list(src.frames()) == []
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_folder_reader_bad_file_is_a_failure(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "f", 2)
    (folder / "frame0001.png").write_bytes(b"not a png")
    reader = FolderReader(folder)
    assert reader.read() is not None
    with pytest.raises(SourceFailure):
        reader.read()
