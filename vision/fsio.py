"""Atomic file writes: a reader sees the old file or the new one, never a torn one.

Every file ReturnLens writes for someone else to read (manifests, model files and their
cards, registry pointers, photos, exported labels, benchmark reports, dock labels, the
demo's key file) goes through this module, so there is one rule and one implementation.

**Atomicity, always.** The bytes go to a temporary file in the destination's folder
(same file system, so the rename cannot turn into a copy), which then replaces the
destination with ``os.replace``: an atomic rename on POSIX and Windows. A reader, a
second process or a crash in the middle sees the complete old file or the complete new
one. On any error the temporary file is removed and the destination is untouched.
Temporary names start with a dot and end in ``.tmp`` (``.model.onnx.3f9a1c2e.tmp``), so
globs such as ``*.onnx`` never pick one up; a writer that infers a format from the file
extension (``cv2.imwrite``) must therefore be given the format explicitly.

**Durability, only when asked** (``durable=True``). Atomicity says nothing about power
loss: without a flush the rename can reach the disk before the data, or not at all. A
durable write fsyncs the temporary file before the rename and the folder after it, so
once the call returns the new file survives a crash. Use it where something else is
committed on the strength of the file, today the photo store (a database row will point
at the photo). Everything else is rebuilt by rerunning what wrote it (a manifest, an
export, a report, a label image) or is a cache (the demo's remembered keys), and skips
the flush: each costs milliseconds to tens of milliseconds of disk time per file.

``mode`` sets the permission bits of a newly created file, filtered by the umask like
``open()`` (default ``0o666``, so usually ``0o644``); ``0o600`` keeps a file private to
its owner from the first byte, never briefly readable by others.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_MODE = 0o666  # what open() uses; the process umask narrows it
# ".<target name>.<8 hex>.tmp": what _temp_beside creates. A file of this name that is
# more than a few seconds old was left by a writer that was killed mid-write.
TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of this module's temporary file names."""
    return TEMP_NAME.match(name) is not None


def _temp_beside(dest: Path, mode: int) -> tuple[Path, int]:
    """Create a new, empty, uniquely named temporary file beside ``dest``; (path, fd)."""
    while True:
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:  # a 1-in-4-billion name clash: draw again
            continue


def wait_for_disk(fd: int) -> None:
    """``os.fsync(fd)``, in a frame of its own: a sampling profiler (py-spy) reports a
    thread waiting here as running, and ``benchmarks/profile_service.py`` leaves samples
    whose innermost frame is this one out of the CPU shares, as it does other waits."""
    os.fsync(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows, or a file system that refuses it
        return
    try:
        wait_for_disk(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _commit(tmp: Path, dest: Path, *, durable: bool) -> None:
    if durable:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            wait_for_disk(fd)
        finally:
            os.close(fd)
    os.replace(tmp, dest)
    if durable:
        fsync_dir(dest.parent)


@contextmanager
def atomic_path(
    dest: Path | str, *, durable: bool = False, mode: int = DEFAULT_MODE
) -> Iterator[Path]:
    """A temporary path that replaces ``dest`` when the block ends without an error.

    For writers that need a file name rather than bytes (``onnx.save``, ``torch.save``,
    ``shutil.copyfile``, a writer that reopens the file several times). The file exists,
    empty and with ``mode``, when the block starts; the writer overwrites it. If the block
    raises, the temporary file is removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    tmp, fd = _temp_beside(dest, mode)
    os.close(fd)
    try:
        yield tmp
        _commit(tmp, dest, durable=durable)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(
    dest: Path | str, data: bytes, *, durable: bool = False, mode: int = DEFAULT_MODE
) -> None:
    """Write ``data`` to ``dest`` atomically (fsynced first when ``durable``)."""
    dest = Path(dest)
    tmp, fd = _temp_beside(dest, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _commit(tmp, dest, durable=durable)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(
    dest: Path | str,
    text: str,
    *,
    encoding: str = "utf-8",
    durable: bool = False,
    mode: int = DEFAULT_MODE,
) -> None:
    """Write ``text`` to ``dest`` atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(dest, text.encode(encoding), durable=durable, mode=mode)


def atomic_copy(src: Path | str, dest: Path | str, *, durable: bool = False) -> None:
    """Copy the bytes of ``src`` to ``dest`` atomically (no metadata is copied)."""
    with atomic_path(dest, durable=durable) as tmp:
        shutil.copyfile(src, tmp)
