"""Synthetic returns generator: determinism, manifest contract, masks, grade rule, SKUs,
bad photos, CLI errors. Small counts at 128 px so the whole file runs in seconds."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from returnlens.cli import main
from vision.synth import (
    BAD_KINDS,
    CATEGORIES,
    DAMAGE_LABELS,
    GRADE_LABELS,
    ItemState,
    SynthConfig,
    catalog_skus,
    generate_dataset,
    grade_for,
    render_item,
    render_photo,
    render_reference,
    sample_state,
)
from vision.synth.state import allowed_damage

CONFIG = SynthConfig(count=60, seed=5, image_size=128, bad_photo_fraction=0.2, photos_per_item=2)


def _read(manifest: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = manifest.read_text(encoding="utf-8").splitlines()
    return json.loads(lines[0]), [json.loads(x) for x in lines[1:]]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    return generate_dataset(out, CONFIG, workers=1, progress=False)


def test_same_seed_gives_identical_bytes_for_any_worker_count(
    dataset: Path, tmp_path: Path
) -> None:
    again = generate_dataset(tmp_path / "b", CONFIG, workers=2, progress=False)
    assert again.read_bytes() == dataset.read_bytes()
    files = sorted(p.relative_to(dataset.parent) for p in dataset.parent.rglob("*") if p.is_file())
    assert len(files) > 2 * CONFIG.count
    for rel in files:
        assert (again.parent / rel).read_bytes() == (dataset.parent / rel).read_bytes(), rel
    other = generate_dataset(
        tmp_path / "c", SynthConfig(count=6, seed=6, image_size=128), workers=1, progress=False
    )
    assert (other.parent / "images/000000.jpg").read_bytes() != (
        dataset.parent / "images/000000.jpg"
    ).read_bytes()


def test_manifest_follows_the_contract(dataset: Path) -> None:
    head, records = _read(dataset)
    assert head["kind"] == "returnlens-manifest" and head["version"] == 1
    assert head["grade_labels"] == list(GRADE_LABELS)
    assert head["damage_labels"] == list(DAMAGE_LABELS)
    assert len(records) == CONFIG.count
    assert len({r["id"] for r in records}) == CONFIG.count
    for r in records:
        assert (dataset.parent / r["image"]).is_file() and (dataset.parent / r["mask"]).is_file()
        assert r["grade"] in head["grade_labels"]
        assert set(r["damage"]) <= set(head["damage_labels"])
        assert r["category"] in CATEGORIES and r["sku"].startswith(r["category"] + "-")
    items_per_split = Counter(split for _, split in {(r["item_id"], r["split"]) for r in records})
    assert set(items_per_split) == {"train", "val", "test"}
    assert min(items_per_split.values()) >= 2
    grades = Counter(r["grade"] for r in records)
    assert set(grades.values()) == {CONFIG.count // len(GRADE_LABELS)}  # balanced by construction
    catalog = [json.loads(x) for x in (dataset.parent / "catalog.jsonl").read_text().splitlines()]
    assert {c["sku"] for c in catalog} >= {r["sku"] for r in records}
    for c in catalog:
        assert (dataset.parent / c["reference"]).is_file() and c["price"] > 0 and c["name"]


def test_views_of_one_item_share_its_state(dataset: Path) -> None:
    _, records = _read(dataset)
    by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_item[r["item_id"]].append(r)
    assert set(len(v) for v in by_item.values()) == {CONFIG.photos_per_item}
    for views in by_item.values():
        keys = {
            (
                v["grade"],
                tuple(v["damage"]),
                v["sku"],
                v["split"],
                json.dumps(v["meta"]["severity"]),
            )
            for v in views
        }
        assert len(keys) == 1
        assert views[0]["image"] != views[1]["image"]


def test_masks_mark_exactly_the_listed_damage(dataset: Path) -> None:
    _, records = _read(dataset)
    checked = 0
    for r in records:
        mask = cv2.imread(str(dataset.parent / r["mask"]), cv2.IMREAD_UNCHANGED)
        assert mask is not None and mask.dtype == np.uint8
        assert mask.shape == (CONFIG.image_size,) * 2
        bits = [np.bitwise_and(mask, 1 << i).any() for i in range(len(DAMAGE_LABELS))]
        present = {label for label, on in zip(DAMAGE_LABELS, bits, strict=True) if on}
        assert present <= set(r["damage"]), r["id"]
        if r["meta"]["bad"] not in ("cut_off", "small"):  # damage may be out of frame / sub-pixel
            assert present == set(r["damage"]), r["id"]
            checked += 1
    assert checked > CONFIG.count // 2


def test_grades_follow_the_documented_rule(dataset: Path) -> None:
    _, records = _read(dataset)
    for r in records:
        assert grade_for(r["meta"]["packaging"], r["meta"]["severity"].items()) == r["grade"]
    assert grade_for("sealed", []) == "A_new"
    assert grade_for("opened", []) == "B_like_new"
    assert grade_for("opened", [("scratch", 0.2)]) == "C_good"
    assert grade_for("opened", [("scratch", 0.2), ("stain", 0.1)]) == "C_good"
    assert grade_for("opened", [("scratch", 0.5)]) == "D_fair"
    assert grade_for("sealed", [("dent", 0.1)]) == "D_fair"
    assert grade_for("opened", [("crack", 0.1)]) == "E_damaged"
    assert grade_for("opened", [("missing_part", 0.3), ("scratch", 0.1)]) == "E_damaged"
    assert grade_for("opened", [("stain", 0.9)]) == "E_damaged"


def test_sampler_hits_every_grade_with_plausible_damage() -> None:
    rng = np.random.default_rng(0)
    for sku in catalog_skus(1, 4):
        for grade in GRADE_LABELS:
            for _ in range(3):
                state = sample_state(sku, grade, rng)
                assert state.grade == grade
                assert set(state.labels) <= set(allowed_damage(sku))
                assert (state.packaging == "sealed") == (grade == "A_new") or sku.category == "box"


def test_rendered_item_masks_cover_each_damage() -> None:
    sku = next(s for s in catalog_skus(2) if s.category == "phone")
    for label in ("scratch", "dent", "crack", "missing_part"):
        state = ItemState(packaging="opened", damage=((label, 0.5),), detail_seed=7)
        item = render_item(sku, state, np.random.default_rng(1), 160)
        assert item.rgba.shape == (160, 160, 4) and item.damage_mask(label).sum() > 20, label
        others = [x for x in DAMAGE_LABELS if x != label]
        assert not any(item.damage_mask(x).any() for x in others)


def test_skus_are_deterministic_and_visibly_different() -> None:
    skus = catalog_skus(11, 4)
    assert skus == catalog_skus(11, 4)
    assert len({s.sku for s in skus}) == len(skus) == 4 * len(CATEGORIES)
    refs = {s.sku: render_reference(s, 96).astype(np.float32) for s in skus}
    assert np.array_equal(refs[skus[0].sku], render_reference(skus[0], 96))
    for cat in CATEGORIES:
        same = [s.sku for s in skus if s.category == cat]
        for i, a in enumerate(same):
            for b in same[i + 1 :]:
                diff = float(np.abs(refs[a] - refs[b]).mean())
                assert diff > 8.0, (a, b, diff)


def test_bad_photos_are_flagged_and_look_bad(dataset: Path) -> None:
    _, records = _read(dataset)
    bad = [r for r in records if r["meta"]["bad"]]
    assert abs(len(bad) - CONFIG.bad_photo_fraction * CONFIG.count) <= 2
    assert {r["meta"]["bad"] for r in bad} <= set(BAD_KINDS)
    sku = catalog_skus(0)[0]
    state = sample_state(sku, "B_like_new", np.random.default_rng(3))

    def photo(bad_kind: str | None) -> np.ndarray:
        return render_photo(
            sku, state, np.random.default_rng(4), 128, background="plain", bad=bad_kind
        )[0]

    clean = cv2.cvtColor(photo(None), cv2.COLOR_RGB2GRAY)
    assert cv2.cvtColor(photo("dark"), cv2.COLOR_RGB2GRAY).mean() < 0.35 * clean.mean()
    assert cv2.cvtColor(photo("bright"), cv2.COLOR_RGB2GRAY).mean() > 200
    sharp = cv2.Laplacian(clean.astype(np.float32), cv2.CV_32F).var()
    blurred = cv2.Laplacian(
        cv2.cvtColor(photo("blur"), cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F
    ).var()
    assert blurred < 0.3 * sharp


def test_cli_writes_dataset_and_refuses_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    assert (
        main(
            [
                "synth",
                "--out",
                str(out),
                "--count",
                "5",
                "--size",
                "96",
                "--workers",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    assert (out / "manifest.jsonl").is_file() and (out / "contact_sheet.png").is_file()
    assert main(["synth", "--out", str(tmp_path / "x"), "--count", "0"]) == 2
    assert "count must be a positive" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["synth", "--out", str(blocker / "sub"), "--count", "3", "--quiet"]) == 2
    assert "[unwritable_output]" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("someone's data")
    assert main(["synth", "--out", str(foreign), "--count", "3", "--quiet"]) == 2
    assert "[output_not_empty]" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "y"), "--count", "3", "--bad-photos", "1.5"]) == 2
