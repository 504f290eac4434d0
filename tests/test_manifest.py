"""Dataset manifest: every problem code, label inference, paths, merge and the importers."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from returnlens.cli import main
from vision.errors import DataError
from vision.manifest import (
    ManifestHeader,
    ManifestRecord,
    Problem,
    import_elpv,
    import_folder,
    load_manifest,
    merge_manifests,
    validate_manifest,
    write_manifest,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
GRADES = ["A_new", "C_good", "E_damaged"]
DAMAGE = ["scratch", "dent"]


def png(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (value, value, value)).save(path, format="PNG")
    return path


def rec(rid: Any, split: str = "train", **over: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": rid,
        "image": f"img/{rid}.png",
        "grade": "C_good",
        "damage": ["scratch"],
        "category": "mug",
        "sku": "mug-1",
        "split": split,
    }
    obj.update(over)
    return obj


HEADER = {
    "kind": "returnlens-manifest",
    "version": 1,
    "grade_labels": GRADES,
    "damage_labels": DAMAGE,
    "source": "test",
}


def dump(tmp: Path, lines: list[Any], name: str = "m.jsonl") -> Path:
    """Write objects (or raw strings) as lines; create a PNG for every referenced image."""
    out = []
    for line in lines:
        image = str(line.get("image") or "") if isinstance(line, dict) else ""
        if image and not image.startswith(("missing", "/")) and not (tmp / image).exists():
            png(tmp / image)
        out.append(line if isinstance(line, str) else json.dumps(line))
    path = tmp / name
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def valid_lines() -> list[Any]:
    return [
        HEADER,
        rec("a"),
        rec("b", grade="A_new", damage=[]),
        rec("c", "val"),
        rec("d", "test", grade=None),
    ]


def codes(problems: list[Problem]) -> list[tuple[int | None, str, str]]:
    return [(p.line, p.code, p.severity) for p in problems]


def test_valid_manifest_loads_with_absolute_paths_and_summary(tmp_path: Path) -> None:
    path = dump(tmp_path, valid_lines())
    assert validate_manifest(path) == []
    m = load_manifest(path)
    assert m.header.grade_labels == tuple(GRADES)
    assert m.records[0].image == tmp_path / "img" / "a.png"
    assert m.records[0].image.is_absolute()
    assert [r.id for r in m.split("train")] == ["a", "b"]
    s = m.summary()
    assert s["splits"]["train"]["grades"] == {"A_new": 1, "C_good": 1, "E_damaged": 0}
    assert s["splits"]["test"]["unlabelled"] == 1
    assert s["damage"] == {"scratch": 3, "dent": 0}
    assert s["no_damage"] == 1 and s["categories"] == {"mug": 4}


def _replace(index: int, value: Any) -> list[Any]:
    lines = valid_lines()
    lines[index] = value
    return lines


def _text(tmp: Path, name: str, content: str) -> str:
    (tmp / name).write_text(content)
    return name


# (case name, lines builder taking tmp_path, expected (line, code, severity) subset)
CASES: list[tuple[str, Any, list[tuple[int | None, str, str]]]] = [
    (
        "missing_file",
        lambda t: _replace(1, rec("a", image="missing/a.png")),
        [(2, "missing_file", "error")],
    ),
    (
        "not_an_image",
        lambda t: _replace(1, rec("a", image=_text(t, "a.txt", "hello"))),
        [(2, "not_an_image", "error")],
    ),
    (
        "missing_mask",
        lambda t: _replace(1, rec("a", mask="missing/m.png")),
        [(2, "missing_file", "error")],
    ),
    (
        "unknown_grade",
        lambda t: _replace(1, rec("a", grade="B_like_new")),
        [(2, "unknown_grade", "error")],
    ),
    (
        "unknown_damage",
        lambda t: _replace(1, rec("a", damage=["scratch", "burn"])),
        [(2, "unknown_damage", "error")],
    ),
    (
        "duplicate_id",
        lambda t: _replace(2, rec("a", image="img/b.png")),
        [(3, "duplicate_id", "error")],
    ),
    ("empty_val", lambda t: _replace(3, rec("c", "train")), [(None, "empty_split", "error")]),
    ("empty_test_warns", lambda t: valid_lines()[:4], [(None, "empty_split", "warning")]),
    (
        "malformed_json",
        lambda t: _replace(2, '{"id": "b", "image": '),
        [(3, "malformed_json", "error")],
    ),
    ("deep_json", lambda t: _replace(2, "[" * 200_000), [(3, "malformed_json", "error")]),
    (
        "missing_field",
        lambda t: _replace(1, {k: v for k, v in rec("a").items() if k != "sku"}),
        [(2, "missing_field", "error")],
    ),
    (
        "wrong_type_damage",
        lambda t: _replace(1, rec("a", damage="scratch")),
        [(2, "wrong_type", "error")],
    ),
    (
        "wrong_type_id",
        lambda t: _replace(1, rec(7, image="img/7.png")),
        [(2, "wrong_type", "error")],
    ),
    ("empty_category", lambda t: _replace(1, rec("a", category="")), [(2, "wrong_type", "error")]),
    ("bad_split", lambda t: _replace(1, rec("a", "Train")), [(2, "bad_split", "error")]),
    ("not_an_object", lambda t: _replace(1, "[1, 2]"), [(2, "not_an_object", "error")]),
    (
        "duplicate_label",
        lambda t: _replace(0, {**HEADER, "damage_labels": ["dent", "dent"]}),
        [(1, "duplicate_label", "error"), (2, "unknown_damage", "error")],
    ),
    (
        "bad_header",
        lambda t: _replace(0, {**HEADER, "kind": "other"}),
        [(1, "bad_header", "error")],
    ),
    (
        "header_wrong_type",
        lambda t: _replace(0, {**HEADER, "grade_labels": "A,B"}),
        [(1, "wrong_type", "error")],
    ),
    (
        "unsupported_version",
        lambda t: _replace(0, {**HEADER, "version": 2}),
        [(1, "unsupported_version", "error")],
    ),
    ("misplaced_header", lambda t: [*valid_lines(), HEADER], [(6, "misplaced_header", "error")]),
    (
        "split_leak_image",
        lambda t: _replace(4, rec("d", "test", image="img/a.png")),
        [(5, "split_leak", "error")],
    ),
    (
        "split_leak_item",
        lambda t: [
            HEADER,
            rec("a", item_id="i1"),
            rec("b"),
            rec("c", "val", item_id="i1"),
            rec("d", "test"),
        ],
        [(4, "split_leak", "error")],
    ),
    (
        "duplicate_image_warns",
        lambda t: _replace(2, rec("b", image="img/a.png")),
        [(3, "duplicate_image", "warning")],
    ),
    (
        "unknown_field_warns",
        lambda t: _replace(1, rec("a", colour="red")),
        [(2, "unknown_field", "warning")],
    ),
    ("no_records", lambda t: [HEADER], [(None, "no_records", "error")]),
]


@pytest.mark.parametrize(("name", "build", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_problem_code(
    tmp_path: Path, name: str, build: Any, expected: list[tuple[int | None, str, str]]
) -> None:
    path = dump(tmp_path, build(tmp_path))
    problems = validate_manifest(path)
    for item in expected:
        assert item in codes(problems), (name, codes(problems))
    if any(sev == "error" for _, _, sev in expected):
        with pytest.raises(DataError) as info:
            load_manifest(path)
        assert info.value.code == "invalid_manifest"
        assert {p["code"] for p in info.value.details["problems"]} >= {c for _, c, _ in expected}
    else:
        assert load_manifest(path).records  # warnings alone keep it valid


def test_bad_encoding_line(tmp_path: Path) -> None:
    path = dump(tmp_path, valid_lines())
    path.write_bytes(path.read_bytes() + b'{"id": "caf\xe9"}\n')
    assert (6, "bad_encoding", "error") in codes(validate_manifest(path))


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "binary", "whitespace"])
def test_unreadable_files_are_problems_not_tracebacks(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "m.jsonl"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "whitespace":
        path.write_bytes(b"\n  \n\t\n")
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 40)
    expected = {
        "missing": "missing_manifest",
        "directory": "not_a_file",
        "empty": "empty_manifest",
        "binary": "not_text",
        "whitespace": "empty_manifest",
    }
    problems = validate_manifest(path)
    assert [p.code for p in problems] == [expected[kind]]
    with pytest.raises(DataError):
        load_manifest(path)


def test_mutated_manifests_never_raise_anything_but_data_error(tmp_path: Path) -> None:
    """Seeded byte-level corruption: validate returns problems, load raises DataError."""
    path = dump(tmp_path, valid_lines())
    clean = path.read_bytes()
    rng = random.Random(0)
    inserts = [b'{"id": 1e999}', b"[" * 5000, b"NaN", b'{"kind": null}', b"\xff\xfe", b"{}"]
    for _ in range(150):
        data = bytearray(clean)
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[pos] = rng.randrange(1, 256)
            else:
                data[pos:pos] = rng.choice(inserts)
        path.write_bytes(bytes(data))
        problems = validate_manifest(path)
        if any(p.is_error for p in problems):
            with pytest.raises(DataError):
                load_manifest(path)


def test_every_problem_is_listed_not_just_the_first(tmp_path: Path) -> None:
    lines = [
        HEADER,
        rec("a", grade="Z"),
        rec("a", image="img/b.png", split="x"),
        "oops",
        rec("c", "val", image="missing/c.png"),
    ]
    found = codes(validate_manifest(dump(tmp_path, lines)))
    for item in [
        (2, "unknown_grade", "error"),
        (3, "bad_split", "error"),
        (3, "duplicate_id", "error"),
        (4, "malformed_json", "error"),
        (5, "missing_file", "error"),
    ]:
        assert item in found
    assert Problem(2, "a", "unknown_grade", "x").format() == "line 2 [a]: unknown_grade: x"


def test_no_files_skips_file_checks(tmp_path: Path) -> None:
    path = dump(tmp_path, _replace(1, rec("a", image="missing/a.png")))
    assert validate_manifest(path, check_files=False) == []
    assert load_manifest(path, check_files=False).records[0].image == tmp_path / "missing/a.png"


def test_headerless_manifest_infers_sorted_labels(tmp_path: Path) -> None:
    lines = [
        rec("a", grade="b_mid", damage=["tear", "dent"]),
        rec("b", "val", grade="a_top"),
        rec("c", "test", grade=None, damage=[]),
    ]
    m = load_manifest(dump(tmp_path, lines))
    assert m.header.grade_labels == ("a_top", "b_mid")
    assert m.header.damage_labels == ("dent", "scratch", "tear")


def test_paths_resolve_against_the_manifest_dir_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "data"
    sub.mkdir()
    outside = png(tmp_path / "elsewhere" / "x.png")
    lines = [
        HEADER,
        rec("a", image="../elsewhere/x.png"),
        rec("b", image=str(outside)),
        rec("c", "val"),
    ]
    path = dump(sub, lines)
    monkeypatch.chdir(tmp_path / "elsewhere")
    m = load_manifest(os.path.relpath(path))
    assert m.records[0].image == outside and m.records[1].image == outside


def _records(tmp: Path, prefix: str, grades: list[str]) -> list[ManifestRecord]:
    out = []
    for i, split in enumerate(["train", "val", "test"]):
        out.append(
            ManifestRecord(
                f"{prefix}{i}",
                png(tmp / f"{prefix}{i}.png"),
                grades[i % len(grades)],
                (),
                "box",
                "box-1",
                split,
                meta={"n": i},
            )
        )
    return out


def test_write_manifest_round_trip_and_relative_paths(tmp_path: Path) -> None:
    outside = png(tmp_path / "outside.png")
    recs = [
        *_records(tmp_path / "m", "r", GRADES),
        ManifestRecord(
            "o",
            outside,
            "A_new",
            ("dent",),
            "box",
            "b",
            "train",
            item_id="it",
            mask=Path("masks/o.png"),
        ),
    ]
    png(tmp_path / "m" / "masks" / "o.png")
    header = ManifestHeader(tuple(GRADES), tuple(DAMAGE), "src", "desc")
    path = tmp_path / "m" / "manifest.jsonl"
    write_manifest(path, header, recs)
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    assert raw[0]["kind"] == "returnlens-manifest" and raw[1]["image"] == "r0.png"
    assert raw[4]["image"] == str(outside) and raw[4]["mask"] == "masks/o.png"
    m = load_manifest(path)
    assert m.header == header and m.records[:3] == tuple(recs[:3])
    assert m.records[0].meta == {"n": 0} and m.records[3].mask == tmp_path / "m/masks/o.png"


def test_write_manifest_refuses_invalid_records(tmp_path: Path) -> None:
    header = ManifestHeader(("A",), (), "", "")
    bad = ManifestRecord("x", tmp_path / "x.png", "B", ("dent",), "c", "s", "train")
    with pytest.raises(DataError) as info:
        write_manifest(tmp_path / "m.jsonl", header, [bad, bad])
    assert {p["code"] for p in info.value.details["problems"]} == {
        "unknown_grade",
        "unknown_damage",
        "duplicate_id",
    }
    assert not (tmp_path / "m.jsonl").exists()


def _write(
    tmp: Path, name: str, grades: list[str], damage: list[str], recs: list[ManifestRecord]
) -> Path:
    path = tmp / name
    write_manifest(path, ManifestHeader(tuple(grades), tuple(damage), name, ""), recs)
    return path


def test_merge_unites_compatible_labels(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.jsonl", GRADES, ["dent"], _records(tmp_path, "a", GRADES))
    b = _write(
        tmp_path,
        "b.jsonl",
        ["C_good", "E_damaged"],
        ["tear", "dent"],
        _records(tmp_path, "b", ["C_good"]),
    )
    m = merge_manifests([b, a], tmp_path / "out" / "c.jsonl")
    assert m.header.grade_labels == tuple(GRADES)
    assert m.header.damage_labels == ("tear", "dent")
    assert len(load_manifest(tmp_path / "out" / "c.jsonl").records) == 6


@pytest.mark.parametrize("conflict", ["grade_order", "ids", "mask_bits"])
def test_merge_conflicts_are_named(tmp_path: Path, conflict: str) -> None:
    a = _write(tmp_path, "a.jsonl", GRADES, ["scratch", "dent"], _records(tmp_path, "a", GRADES))
    if conflict == "grade_order":
        b = _write(
            tmp_path, "b.jsonl", ["E_damaged", "A_new"], [], _records(tmp_path, "b", ["A_new"])
        )
    elif conflict == "ids":
        b = _write(tmp_path, "b.jsonl", GRADES, [], _records(tmp_path, "a", GRADES))
    else:
        r = ManifestRecord(
            "m",
            png(tmp_path / "m.png"),
            None,
            ("dent",),
            "c",
            "s",
            "train",
            mask=png(tmp_path / "mask.png"),
        )
        b = _write(tmp_path, "b.jsonl", GRADES, ["dent", "scratch"], [r])
    with pytest.raises(DataError) as info:
        merge_manifests([a, b], tmp_path / "c.jsonl")
    assert "b.jsonl" in info.value.message
    assert info.value.code == ("duplicate_id" if conflict == "ids" else "label_conflict")
    assert not (tmp_path / "c.jsonl").exists()


def image_tree(root: Path, layout: dict[str, int], *, junk: bool = False) -> None:
    """layout: 'split/class' or 'class' -> number of PNGs."""
    for folder, n in layout.items():
        for i in range(n):
            png(root / folder / f"{i:03d}.png", i)
        if junk:
            (root / folder / "notes.txt").write_text("not a photo")


def test_import_folder_with_split_dirs(tmp_path: Path) -> None:
    image_tree(
        tmp_path / "tree",
        {"train/minor": 4, "train/severe": 3, "val/minor": 2, "val/severe": 1, "test/minor": 1},
        junk=True,
    )
    out = tmp_path / "gen" / "manifest.jsonl"
    m = import_folder(
        tmp_path / "tree", out, grade_map={"minor": "C_good", "severe": "E_bad"}, category="car"
    )
    assert m.header.grade_labels == ("C_good", "E_bad")
    s = load_manifest(out).summary()
    assert s["splits"]["train"]["grades"] == {"C_good": 4, "E_bad": 3}
    assert s["splits"]["val"]["records"] == 3 and s["splits"]["test"]["records"] == 1
    assert "5 non-image file(s) skipped" in m.header.description
    r = m.records[0]
    assert r.id == "tree/train/minor/000.png" and r.sku == "minor" and r.category == "car"
    assert r.image == tmp_path / "tree/train/minor/000.png"  # referenced in place


def test_import_folder_without_split_dirs_is_deterministic_and_stratified(tmp_path: Path) -> None:
    image_tree(tmp_path / "tree", {"good": 20, "bad": 10})
    kw: dict[str, Any] = {
        "grade_map": {"good": "g", "bad": "b"},
        "split_dirs": False,
        "sku_from_folder": False,
        "grade_labels": ["g", "x", "b"],
    }
    m1 = import_folder(tmp_path / "tree", tmp_path / "1.jsonl", **kw)
    m2 = import_folder(tmp_path / "tree", tmp_path / "2.jsonl", **kw)
    m3 = import_folder(tmp_path / "tree", tmp_path / "3.jsonl", seed=1, **kw)
    assert [r.split for r in m1.records] == [r.split for r in m2.records]
    assert [r.split for r in m1.records] != [r.split for r in m3.records]
    s = m1.summary()["splits"]
    assert (s["train"]["grades"], s["val"]["grades"], s["test"]["grades"]) == (
        {"g": 16, "x": 0, "b": 8},
        {"g": 2, "x": 0, "b": 1},
        {"g": 2, "x": 0, "b": 1},
    )
    assert {r.sku for r in m1.records} == {"unknown"} and m1.header.grade_labels == ("g", "x", "b")


def test_import_folder_carves_val_from_train_when_absent(tmp_path: Path) -> None:
    image_tree(tmp_path / "tree", {"train/a": 10, "test/a": 2})
    m = import_folder(tmp_path / "tree", tmp_path / "m.jsonl", grade_map={"a": "A"})
    assert [len(m.split(s)) for s in ("train", "val", "test")] == [9, 1, 2]


def test_import_folder_link_mode_writes_relative_symlinks(tmp_path: Path) -> None:
    image_tree(tmp_path / "tree", {"train/a": 2, "val/a": 1, "test/a": 1})
    out = tmp_path / "gen" / "m.jsonl"
    import_folder(tmp_path / "tree", out, grade_map={"a": "A"}, link=True)
    first = json.loads(out.read_text().splitlines()[1])
    assert first["image"] == "images/train/a/000.png"
    assert (out.parent / first["image"]).is_symlink() and validate_manifest(out) == []


@pytest.mark.parametrize(
    ("layout", "kwargs", "code"),
    [
        ({"train/a": 2, "train/b": 2, "train/c": 1}, {}, "unmapped_folders"),
        ({"a": 3}, {}, "bad_layout"),
        ({"train/a": 1}, {"val_fraction": 0.0}, "empty_split"),
        ({"train/a": 3}, {"grade_labels": ["Z"]}, "bad_mapping"),
        ({"train/a": 3}, {"val_fraction": 0.6, "test_fraction": 0.5}, "bad_split"),
    ],
)
def test_import_folder_refusals(
    tmp_path: Path, layout: dict[str, int], kwargs: dict[str, Any], code: str
) -> None:
    image_tree(tmp_path / "tree", layout)
    with pytest.raises(DataError) as info:
        import_folder(tmp_path / "tree", tmp_path / "m.jsonl", grade_map={"a": "A"}, **kwargs)
    assert info.value.code == code
    if code == "unmapped_folders":
        assert info.value.details["unmapped"] == ["b", "c"]
    assert not (tmp_path / "m.jsonl").exists()


def elpv_tree(root: Path, per_group: int = 20, extra: str = "") -> None:
    rows = ["path,defect_probability,cell_type"]
    n = 0
    for prob in ("0.0", "0.3333", "0.6667", "1.0"):
        for cell in ("mono", "poly"):
            for _ in range(per_group):
                png(root / "images" / f"cell{n:04d}.png", n % 256)
                rows.append(f"images/cell{n:04d}.png,{prob},{cell}")
                n += 1
    (root / "labels.csv").write_text("\n".join(rows) + "\n" + extra)


def test_import_elpv_grades_categories_and_stratified_split(tmp_path: Path) -> None:
    elpv_tree(tmp_path / "elpv")
    m = import_elpv(tmp_path / "elpv", tmp_path / "m.jsonl")
    s = load_manifest(tmp_path / "m.jsonl").summary()
    assert m.header.grade_labels == ("p0", "p33", "p67", "p100")
    assert s["categories"] == {"mono": 80, "poly": 80}
    # 20 per (grade, cell type): 3 val, 3 test, 14 train
    assert s["splits"]["val"]["grades"] == {"p0": 6, "p33": 6, "p67": 6, "p100": 6}
    assert s["splits"]["train"]["records"] == 112
    assert m.records[0].meta == {"defect_probability": 0.0}


@pytest.mark.parametrize(
    "extra",
    ["images/cell0000.png,0.5,mono\n", "images/nope.png,1.0,mono\n", "images/cell0000.png,1.0,\n"],
)
def test_import_elpv_refuses_bad_rows(tmp_path: Path, extra: str) -> None:
    elpv_tree(tmp_path / "elpv", per_group=3, extra=extra)
    with pytest.raises(DataError) as info:
        import_elpv(tmp_path / "elpv", tmp_path / "m.jsonl")
    assert "row" in info.value.message or "missing" in info.value.message


def test_import_elpv_refuses_missing_csv_and_columns(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"labels\.csv"):
        import_elpv(tmp_path, tmp_path / "m.jsonl")
    (tmp_path / "labels.csv").write_text("file,label\nx.png,1\n")
    with pytest.raises(DataError, match="columns"):
        import_elpv(tmp_path, tmp_path / "m.jsonl")


def test_cli_validate_valid_and_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = dump(tmp_path, valid_lines())
    assert main(["dataset", "validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert "valid (0 error(s)" in out and "train" in out and "C_good" in out
    bad = dump(tmp_path, _replace(1, rec("a", grade="Z")), name="bad.jsonl")
    assert main(["dataset", "validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "line 2 [a]: unknown_grade:" in out and "INVALID" in out
    assert main(["dataset", "validate", str(tmp_path / "none.jsonl"), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["problems"][0]["code"] == "missing_manifest"


def test_cli_import_folder_and_merge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image_tree(
        tmp_path / "tree", {"train/minor": 3, "val/minor": 1, "train/severe": 2, "val/severe": 1}
    )
    (tmp_path / "map.yaml").write_text("minor: C_good\nsevere: E_damaged\n")
    out = tmp_path / "m.jsonl"
    argv = [
        "dataset",
        "import-folder",
        str(tmp_path / "tree"),
        "--out",
        str(out),
        "--map-file",
        str(tmp_path / "map.yaml"),
        "--grades",
        ",".join(GRADES),
        "--category",
        "car",
    ]
    assert main(argv) == 0
    assert "7 records" in capsys.readouterr().out
    assert load_manifest(out).header.grade_labels == tuple(GRADES)
    assert main([*argv[:5], "--map", "minor"]) == 2
    assert "FOLDER=GRADE" in capsys.readouterr().err
    assert main([*argv[:5], "--map", "minor=C_good"]) == 2
    assert "severe" in capsys.readouterr().err
    elpv_tree(tmp_path / "elpv", per_group=4)
    assert (
        main(["dataset", "import-elpv", str(tmp_path / "elpv"), "--out", str(tmp_path / "e.jsonl")])
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "dataset",
                "merge",
                str(out),
                str(tmp_path / "e.jsonl"),
                "--out",
                str(tmp_path / "c.jsonl"),
            ]
        )
        == 2
    )
    assert "label_conflict" in capsys.readouterr().err


@pytest.mark.realdata
def test_real_car_damage_import(tmp_path: Path) -> None:
    """The shipped train/val/test folders are kept: every photo lands in its folder's
    split with its folder's grade, once, and nothing else is imported."""
    root = SHARED / "car-damage-severity"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    grade_map = {"minor": "C_good", "moderate": "D_fair", "severe": "E_damaged"}
    out = tmp_path / "car" / "manifest.jsonl"
    import_folder(root, out, grade_map=grade_map, category="car")
    assert validate_manifest(out) == []
    records = load_manifest(out).records
    on_disk = {
        p.resolve(): (p.parent.parent.name, p.parent.name)
        for p in root.glob("*/*/*")
        if p.is_file() and p.read_bytes()[:3] == b"\xff\xd8\xff"
    }
    assert {Path(r.image).resolve() for r in records} == set(on_disk)
    assert len(records) == len(on_disk)  # each photo once
    for r in records:
        split, folder = on_disk[Path(r.image).resolve()]
        assert (r.split, r.grade, r.meta["folder"]) == (split, grade_map[folder], folder), r.id
    assert {r.split for r in records} == {"train", "val", "test"}


def _round_half_up(x: float) -> int:
    return int(x + 0.5)


@pytest.mark.realdata
def test_real_elpv_import(tmp_path: Path) -> None:
    """Every labelled cell is imported with the grade of its defect probability, and the
    split is 70/15/15 within each (grade, cell type) group, exactly and reproducibly."""
    import csv
    from collections import Counter

    root = SHARED / "elpv"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    m = import_elpv(root, tmp_path / "elpv.jsonl")
    assert validate_manifest(tmp_path / "elpv.jsonl") == []
    with (root / "labels.csv").open(newline="") as fh:
        rows = {r["path"]: r for r in csv.DictReader(fh)}
    assert {r.id.removeprefix("elpv/") for r in m.records} == set(rows)
    grades = ["p0", "p33", "p67", "p100"]
    groups: dict[tuple[str, str], Counter[str]] = {}
    for r in m.records:
        row = rows[r.id.removeprefix("elpv/")]
        assert r.grade == grades[round(float(row["defect_probability"]) * 3)], r.id
        assert r.category == r.sku == row["cell_type"]
        groups.setdefault((str(r.grade), row["cell_type"]), Counter())[r.split] += 1
    assert len(groups) == 8  # 4 grades x mono/poly, each split on its own
    for key, counts in groups.items():
        n = sum(counts.values())
        assert n >= 3, key  # large enough that the small-group rules do not apply
        assert counts["val"] == counts["test"] == _round_half_up(0.15 * n), (key, counts)
        assert counts["train"] == n - 2 * counts["val"]
    again = import_elpv(root, tmp_path / "again.jsonl")
    assert [r.split for r in again.records] == [r.split for r in m.records]  # deterministic
    other = import_elpv(root, tmp_path / "seed1.jsonl", seed=1)
    assert [r.split for r in other.records] != [r.split for r in m.records]
    assert Counter(r.split for r in other.records) == Counter(r.split for r in m.records)
