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
from benchmarks.harness.service_ratios import checked_ratios
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


def test_the_service_is_set_against_the_checked_floor_the_right_way_round() -> None:
    cells = {
        "1600px/1photo/c1": {"request_ms": {"p50": 40.0}},
        "1600px/1photo/c16": {"photos_per_s": 30.0, "server_cpu_ms_per_photo": 60.0},
    }
    floors = {
        "1photo": {"request_ms": {"p50": 16.0}},
        "checked_1photo": {
            "request_ms": {"p50": 25.0},
            "throughput": {"photos_per_s": 40.0, "cpu_ms_per_photo": 48.0},
        },
    }
    r = checked_ratios(cells, floors, "1600px")
    assert r["checked_floor_latency_over_floor"] == pytest.approx(25.0 / 16.0, abs=1e-3)
    assert r["service_latency_over_checked_floor"] == pytest.approx(40.0 / 25.0, abs=1e-3)
    assert r["service_throughput_over_checked_floor"] == pytest.approx(30.0 / 40.0, abs=1e-3)
    assert r["service_cpu_over_checked_floor_c16"] == pytest.approx(60.0 / 48.0, abs=1e-3)
