"""The bench's floor with the two checks (``benchmarks/harness/floor_checks.py``) does the
copy check's real work against its stored photos: a photo stored before is found as a
copy, a photo of another scene is not, and the catalog reference photo is searched too.
Quick bench photos (rendered into a tmp cache) and the tiny test model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.harness.floor_checks import CheckedFloor
from benchmarks.harness.inputs import make_factories
from vision.pipeline import Grader

SCENES = 4


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    root = tmp_path_factory.mktemp("bench-scenes")
    f = make_factories(quick=True, seed=0, scenes=SCENES, spares=1, cache_root=root)["1600px"]
    return f.batch(0, SCENES)


@pytest.fixture(scope="module")
def floor(tiny_model: Path, photos: list[bytes]) -> Iterator[CheckedFloor]:
    grader = Grader.load(tiny_model, intra_op_threads=1)
    # photos[0] doubles as the catalog reference: a shopper sending the catalog's photo
    checked = CheckedFloor(grader, photos[:2], reference=photos[0])
    yield checked
    checked.close()


def test_a_stored_photo_is_found_and_another_scene_is_not(
    floor: CheckedFloor, photos: list[bytes]
) -> None:
    again = floor.grader.decode(photos[1])  # stored as a shopper photo
    shop, ref = floor.check(again)
    assert shop >= 0.95 and ref < 0.8
    catalog = floor.check(floor.grader.decode(photos[0]))
    assert catalog[1] >= 0.95  # the reference photo, found among the references
    other = floor.grader.decode(photos[3])  # never stored
    assert max(floor.check(other)) < 0.8


def test_an_upload_is_timed_and_counted(floor: CheckedFloor, photos: list[bytes]) -> None:
    lat = floor.latency([[photos[2]], [photos[3]]])
    assert lat["request_ms"]["n"] == 2 and lat["request_ms"]["p50"] > 0
    thr = floor.throughput([[p] for p in photos], [1, 2])
    assert thr["photos"] == SCENES and set(thr["photos_per_s_by_threads"]) == {"1", "2"}
