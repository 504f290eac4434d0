"""``benchmarks/profile_service.py``'s sorting of py-spy's stacks into stages and waits
(py-spy itself runs only in the script)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.profile_service import classify, parse_raw

_STORE = [
    "Thread.run (threading.py:982)",
    "_WorkItem.run (concurrent/futures/thread.py:58)",
    "CleanPuts.put_all (serving/storage/photostore.py:196)",
    "PhotoStore.put_bytes (serving/storage/photostore.py:220)",
    "atomic_write_bytes (vision/fsio.py:120)",
]


def test_a_photo_fsync_is_a_wait_and_the_rest_of_the_store_is_cpu() -> None:
    """A thread in ``os.fsync`` is reported as running; the photo store's own CPU is not."""
    waiting = [*_STORE, "_commit (vision/fsio.py:90)", "wait_for_disk (vision/fsio.py:66)"]
    assert classify(waiting) == "waiting (excluded)"
    assert classify([*_STORE, "_temp_beside (vision/fsio.py:40)"]).startswith("photo store")


def test_stages_come_from_the_innermost_known_frame() -> None:
    gate = ["Grader._quality (vision/pipeline.py:290)", "measure (vision/quality.py:300)"]
    assert classify([*gate, "area_shrink (vision/area.py:60)"]).startswith("quality gate")
    model = ["_resize (vision/preprocess.py:80)", "_in_strips (vision/area.py:85)"]
    assert classify(model).startswith("model resize")
    assert classify(["Condition.wait (threading.py:327)"]) == "waiting (excluded)"


def test_raw_lines_are_counted_by_stage(tmp_path: Path) -> None:
    raw = tmp_path / "stacks.txt"
    lines = [
        ";".join([*_STORE, "wait_for_disk (vision/fsio.py:66)"]) + " 7",
        ";".join([*_STORE, "_temp_beside (vision/fsio.py:40)"]) + " 2",
        "not a stack line",
    ]
    raw.write_text("\n".join(lines) + "\n", encoding="utf-8")
    counts = parse_raw(raw)
    assert counts["waiting (excluded)"] == 7
    assert counts["photo store (encode, sha256, write)"] == 2
    assert sum(counts.values()) == 9
