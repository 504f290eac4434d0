"""Leftovers of killed writes and unreferenced photo files are found and removed.

- ``returnlens storage gc`` lists photo files no row references (shopper, dock and
  catalog reference photos are referenced) and stale temporary files; a dry run by
  default, ``--delete`` removes them. Files younger than ``--min-age`` are kept (an
  upload in flight writes its files before its row commits), and a file an upload
  reuses is made young again. On SQLite and PostgreSQL.
- The service removes stale temporary files (``vision.fsio`` names) from the photo
  store and the data folder at start-up, and leaves young ones (another worker's write
  in flight) alone.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from returnlens.cli import main
from serving.app import create_app
from serving.services import shopper
from serving.services.inputs import CreateReturnRequest
from serving.services.service import ReturnLensService
from serving.storage.gc import collect_garbage, referenced_digests
from serving.storage.photostore import encode_clean_jpeg
from tests.service_data import clean, scene
from tests.shop import make_settings

HOUR = 3600.0


def _age(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def _temp(folder: Path, name: str, age_s: float) -> Path:
    """A temporary file as ``vision.fsio`` names it, left by a killed write."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{name}.0badc0de.tmp"
    path.write_bytes(b"half a photo")
    return _age(path, age_s)


def _shop_files(svc: ReturnLensService) -> dict[str, Path]:
    """A referenced upload, an old orphan, a young orphan, an old and a young temp."""
    rid = shopper.create_return(
        svc, CreateReturnRequest(order_id="o-1", sku="mug-01", reason="changed_mind")
    ).return_id
    shopper.upload_photos(svc, rid, [clean(seed=1)])
    old = svc.photos.path(svc.photos.put_bytes(encode_clean_jpeg(scene(seed=7))))
    young = svc.photos.path(svc.photos.put_bytes(encode_clean_jpeg(scene(seed=8))))
    return {
        "old_orphan": _age(old, 2 * HOUR),
        "young_orphan": young,
        "old_temp": _temp(old.parent, old.name, 2 * HOUR),
        "young_temp": _temp(young.parent, young.name, 0),
    }


def _referenced(svc: ReturnLensService) -> list[Path]:
    return [svc.photos.path(d) for d in sorted(referenced_digests(svc.db))]


def test_gc_finds_orphans_and_removes_them_only_when_asked(svc: ReturnLensService) -> None:
    files = _shop_files(svc)
    kept = _referenced(svc)
    assert len(kept) == 3 and all(p.is_file() for p in kept)  # 2 references + 1 upload
    for p in kept:  # referenced files are kept whatever their age
        _age(p, 10 * HOUR)
    dry = collect_garbage(svc.db, svc.photos)
    assert dry.dry_run and dry.removed == ()
    assert dry.orphans == (files["old_orphan"],)
    assert dry.temp_files == (files["old_temp"],)
    assert dry.young == 1 and dry.referenced == 3 and dry.files == 5
    assert all(p.exists() for p in files.values())  # a dry run touches nothing
    done = collect_garbage(svc.db, svc.photos, delete=True)
    assert set(done.removed) == {files["old_orphan"], files["old_temp"]}
    assert not files["old_orphan"].exists() and not files["old_temp"].exists()
    assert files["young_orphan"].exists() and files["young_temp"].exists()
    assert all(p.is_file() for p in kept)
    again = collect_garbage(svc.db, svc.photos, delete=True)
    assert again.orphans == () and again.temp_files == () and again.removed == ()


def test_a_reused_file_is_young_again(svc: ReturnLensService) -> None:
    """An upload whose pixels match an old orphan reuses the file before its row commits:
    the file must not look old to a gc running in between."""
    data = encode_clean_jpeg(scene(seed=9))
    path = _age(svc.photos.path(svc.photos.put_bytes(data)), 2 * HOUR)
    assert collect_garbage(svc.db, svc.photos).orphans == (path,)
    svc.photos.put_bytes(data)  # the reuse
    report = collect_garbage(svc.db, svc.photos, delete=True)
    assert report.orphans == () and report.young == 1 and path.is_file()


def test_cli_dry_run_then_delete(
    svc: ReturnLensService, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _shop_files(svc)
    where = ["--database-url", db_url, "--photo-dir", str(svc.photos.root)]
    assert main(["storage", "gc", *where]) == 0
    out = capsys.readouterr().out
    assert str(files["old_orphan"]) in out and str(files["old_temp"]) in out
    assert str(files["young_orphan"]) not in out
    assert "dry run" in out and files["old_orphan"].exists()
    assert main(["storage", "gc", "--json", "--delete", *where]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dry_run"] is False
    assert set(report["removed"]) == {str(files["old_orphan"]), str(files["old_temp"])}
    assert not files["old_orphan"].exists() and files["young_orphan"].exists()
    assert main(["storage", "gc", "--min-age", "0", "--delete", *where]) == 0
    capsys.readouterr()
    assert not files["young_orphan"].exists() and not files["young_temp"].exists()
    assert all(p.is_file() for p in _referenced(svc))
    missing = ["--database-url", db_url, "--photo-dir", str(svc.photos.root / "nope")]
    assert main(["storage", "gc", *missing]) == 2
    assert capsys.readouterr().err.startswith("error: there is no photo folder")


def test_start_up_removes_stale_temporary_files(tmp_path: Path, tiny_model: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'gc.db'}", tmp_path, tiny_model)
    photo_dir = settings.photo_dir / "ab"
    stale = [
        _temp(photo_dir, "cdef.jpg", 2 * HOUR),
        _temp(settings.data_dir, "demo.json", 2 * HOUR),
    ]
    fresh = _temp(photo_dir, "0123.jpg", 0)  # another worker's write in flight
    unrelated = settings.data_dir / "notes.tmp"  # not one of our temporary names
    unrelated.write_text("keep me")
    _age(unrelated, 2 * HOUR)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
    assert not any(p.exists() for p in stale)
    assert fresh.exists()
    assert unrelated.exists()


def test_a_replaced_reference_photo_leaves_no_orphan(svc: ReturnLensService) -> None:
    """Replacing a SKU's reference removes the superseded file once nothing points at it;
    a superseded file that a shopper photo also uses stays."""
    from serving.services import admin
    from serving.storage.tables import CatalogItem

    def reference() -> str:
        with svc.db.read() as s:
            row = s.get(CatalogItem, "mug-01")
            assert row is not None and row.reference_digest
            return row.reference_digest

    first = reference()
    shared = encode_clean_jpeg(scene(seed=11))
    admin.set_reference_photo(svc, "mug-01", shared)
    second = reference()
    assert second != first and not svc.photos.path(first).exists()
    rid = shopper.create_return(
        svc, CreateReturnRequest(order_id="o-1", sku="mug-01", reason="changed_mind")
    ).return_id
    shopper.upload_photos(svc, rid, [shared])  # the same pixels, now a shopper photo too
    admin.set_reference_photo(svc, "mug-01", encode_clean_jpeg(scene(seed=12)))
    assert svc.photos.path(second).is_file()  # still a shopper photo's file
    report = collect_garbage(svc.db, svc.photos)
    assert report.orphans == () and report.young == 0


def test_heatmap_cache_keeps_the_recently_used_within_its_size(tmp_path: Path) -> None:
    """The rendered-heatmap folder is bounded: the least recently READ files go first,
    stale temporary files of killed writes go, young ones stay."""
    from serving.storage.heatmap_cache import TRIM_EVERY, HeatmapCache

    cache = HeatmapCache(tmp_path / "photos-heatmaps", max_bytes=10_000)
    keys = [f"{i:064x}" for i in range(8)]
    for i, key in enumerate(keys[:4]):
        cache.put(key, bytes(3000))
        _age(cache.path(key), 100 - i)  # key 0 oldest
    assert cache.get(keys[0]) is not None  # read: now the most recent
    old_temp = _temp(cache.path(keys[0]).parent, "x.png", 2 * HOUR)
    young_temp = _temp(cache.path(keys[0]).parent, "y.png", 0)
    removed = set(cache.trim())
    assert removed == {cache.path(keys[1]), old_temp}  # 12 kB -> 9 kB, LRU first
    assert young_temp.exists() and cache.get(keys[0]) is not None
    for key in keys[4:]:  # writes trim on their own every TRIM_EVERY writes
        cache.put(key, bytes(3000))
    for i in range(TRIM_EVERY):
        cache.put(f"{100 + i:064x}", bytes(10))
    total = sum(p.stat().st_size for p in cache.root.glob("*/*.png"))
    assert total <= 10_000
