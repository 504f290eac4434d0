"""The one atomic-write helper (``vision/fsio.py``) and its fsync rule.

A reader must only ever see the complete old file or the complete new one; a failed
write leaves the old file and no temporary behind; ``durable=True`` flushes the file
before the rename and the folder after it, and nothing is flushed otherwise; ``mode``
holds from the first byte (the demo's key file and the photo store are owner-only).
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.demo import _write_state
from serving.storage.photostore import PhotoStore
from vision.fsio import atomic_copy, atomic_path, atomic_write_bytes, atomic_write_text


@pytest.fixture()
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    dest = tmp_path / "manifest.jsonl"
    dest.write_text("old\n")
    atomic_write_text(dest, "new ünïcode\n")
    assert dest.read_text(encoding="utf-8") == "new ünïcode\n"
    atomic_write_bytes(dest, b"\x00\x01")
    assert dest.read_bytes() == b"\x00\x01"
    assert _leftovers(tmp_path) == []


def test_the_destination_keeps_its_old_bytes_until_the_write_is_complete(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "model.onnx"
    dest.write_bytes(b"old model")
    with atomic_path(dest) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.suffix == ".tmp"
        assert list(tmp_path.glob("*.onnx")) == [dest]  # globs never pick up a temporary
        tmp.write_bytes(b"half a mod")
        assert dest.read_bytes() == b"old model"  # a reader now still sees the old file
        with tmp.open("ab") as fh:
            fh.write(b"el, done")
    assert dest.read_bytes() == b"half a model, done"
    assert _leftovers(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "card.json"
    dest.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("the exporter crashed")
    assert dest.read_text() == "old" and _leftovers(tmp_path) == []

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(dest, "new")
    assert dest.read_text() == "old" and _leftovers(tmp_path) == []


def test_a_concurrent_reader_sees_only_whole_versions(tmp_path: Path) -> None:
    dest = tmp_path / "report.json"
    versions = [bytes([65 + i]) * 200_000 for i in range(4)]
    dest.write_bytes(versions[0])
    done = threading.Event()
    seen: set[bytes] = set()

    def read() -> None:
        while not done.is_set():
            seen.add(dest.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(60):
            atomic_write_bytes(dest, versions[n % len(versions)])
    finally:
        done.set()
        reader.join()
    assert seen and seen <= set(versions)


def test_durable_fsyncs_the_file_before_the_rename_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write_bytes(tmp_path / "a.jpg", b"jpeg", durable=True)
    assert events == ["fsync-file", "rename", "fsync-dir"]

    events.clear()
    with atomic_path(tmp_path / "b.onnx", durable=True) as tmp:
        tmp.write_bytes(b"graph")
    assert events == ["fsync-file", "rename", "fsync-dir"]

    events.clear()
    atomic_write_text(tmp_path / "c.json", "{}")
    atomic_copy(tmp_path / "c.json", tmp_path / "d.json")
    assert events == ["rename", "rename"]  # not durable: no flush at all


def test_mode_is_set_from_the_first_byte(tmp_path: Path, umask_022: None) -> None:
    private = tmp_path / "secret.json"
    with atomic_path(private, mode=0o600) as tmp:
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o600  # before any byte is written
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    atomic_write_text(tmp_path / "plain.json", "{}")
    assert stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o644  # like open()


def test_call_sites_keep_their_mode_and_durability(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_022: None
) -> None:
    flushed: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushed.append(fd), real_fsync(fd)))

    state = tmp_path / "demo" / "demo-keys.json"
    _write_state(state, {"version": 1, "keys": {"admin": "rl_secret"}})
    assert stat.S_IMODE(state.stat().st_mode) == 0o600  # it holds API keys
    assert flushed == []  # a cache: rebuilt by the next demo seed

    store = PhotoStore(tmp_path / "photos")
    digest = store.put_bytes(b"\xff\xd8 clean jpeg bytes")
    assert store.get(digest) == b"\xff\xd8 clean jpeg bytes"
    assert stat.S_IMODE(store.path(digest).stat().st_mode) == 0o600
    assert len(flushed) == 2  # the file and its folder: a DB row will point at it
    assert _leftovers(store.path(digest).parent) == []
