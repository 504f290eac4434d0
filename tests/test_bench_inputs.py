"""The benchmark's photos are distinct items, as shoppers send them (issue 20).

Near-duplicate uploads make the service's copy detection fire on every request and turn
every decision into needs_review, so the service section must upload one rendered scene
per photo, the two photo kinds must not share scenes, the same index must give the same
bytes (runs compare), and the rendered scenes must come from the disk cache on a second
run (rendering the full plan takes minutes). Quick sizes and a tmp cache keep it fast.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.harness import scenes
from benchmarks.harness.inputs import PhotoFactory, describe, make_factories

DISTINCT = 3


def _factories(root: Path) -> dict[str, PhotoFactory]:
    return make_factories(quick=True, seed=0, scenes=DISTINCT, spares=1, cache_root=root)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-scenes")


@pytest.fixture(scope="module")
def factories(cache_root: Path) -> dict[str, PhotoFactory]:
    return _factories(cache_root)


def _thumb(jpeg: bytes) -> np.ndarray:
    """Grey 64 x 48 thumbnail: the scene's content, with the sensor noise averaged away."""
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (64, 48), interpolation=cv2.INTER_AREA).astype(np.float32)


def _diff(a: bytes, b: bytes) -> float:
    return float(np.abs(_thumb(a) - _thumb(b)).mean())


def test_distinct_indices_show_distinct_scenes(factories: dict[str, PhotoFactory]) -> None:
    for f in factories.values():
        photos = f.batch(0, DISTINCT)
        # Two photos of one (spare) scene differ by their noise only.
        same_scene = _diff(f.make(f.distinct), f.make(f.distinct + 1))
        assert f.scene(f.distinct) == f.scene(f.distinct + 1)
        for i in range(DISTINCT):
            for j in range(i + 1, DISTINCT):
                assert _diff(photos[i], photos[j]) > 5 * same_scene + 2, (f.kind.name, i, j)
        assert len({f.paths[f.scene(i)] for i in range(DISTINCT)}) == DISTINCT


def test_same_index_same_bytes(factories: dict[str, PhotoFactory]) -> None:
    for f in factories.values():
        assert f.make(1) == f.make(1)
        assert f.make(900_000) == f.make(900_000)  # far past the cached scenes: a spare
    again = _factories(Path(factories["12mp"].paths[0]).parents[1])
    assert again["1600px"].make(2) == factories["1600px"].make(2)


def test_kinds_share_no_scene(factories: dict[str, PhotoFactory]) -> None:
    phone, web = factories["12mp"], factories["1600px"]
    assert not set(phone.paths) & set(web.paths)
    same_scene = _diff(web.make(web.distinct), web.make(web.distinct + 1))
    for i in range(DISTINCT):
        small = cv2.imencode(".jpg", cv2.resize(phone.pixels(i), (web.kind.width, web.kind.height)))
        for j in range(DISTINCT):
            assert _diff(small[1].tobytes(), web.make(j)) > 5 * same_scene + 2, (i, j)


def test_cache_is_reused(cache_root: Path, factories: dict[str, PhotoFactory]) -> None:
    files = sorted((cache_root / "0-256").glob("*.png"))
    mtimes = [p.stat().st_mtime_ns for p in files]
    before = scenes.RENDERS[0]
    _factories(cache_root)
    assert scenes.RENDERS[0] == before  # nothing rendered the second time
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    assert len(files) >= 2 * (DISTINCT + 1)


def test_photos_pass_the_shopper_gate(factories: dict[str, PhotoFactory]) -> None:
    from vision.decode import decode_image
    from vision.quality import assess_quality

    for f in factories.values():
        for i in range(DISTINCT):
            photo = decode_image(f.make(i), target_long_side=None)
            result = assess_quality(photo, profile="shopper")
            assert result.passed, (f.kind.name, i, result)


def test_describe_states_the_distinct_scenes(factories: dict[str, PhotoFactory]) -> None:
    d = describe(factories, sample=2)
    assert d["distinct_scenes"] == 2 * DISTINCT
    assert d["12mp"]["scenes"] == d["1600px"]["scenes"] == DISTINCT
    assert "distinct scene" in d["source"]
