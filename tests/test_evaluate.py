"""``evaluate_model`` and ``returnlens evaluate`` on real encoded photos (torch-free).

The model is the contract-valid ONNX test model from benchmarks/tiny_model.py, whose grade
is a known function of the photo's redness, so the photos below have known answers:
grade k is painted with redness k/4 and must be predicted as grade k.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmarks.tiny_model import DAMAGE, GRADES, build_test_model
from returnlens.cli import main
from tests.photo_factory import encode
from training.evaluate import evaluate_model
from vision.manifest import ManifestHeader, ManifestRecord, load_manifest, write_manifest
from vision.registry import card_of, write_card

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _photo(grade: int, sku: int, rng: np.random.Generator) -> np.ndarray:
    """Square photo: redness grade/4 (sets the grade), bright quadrant by SKU (layout)."""
    base = np.full((96, 96, 3), 0.3 * 255, dtype=np.float64)
    base[..., 0] += grade / 8 * 255  # t = 2 * (r - (g + b) / 2) = grade / 4
    qy, qx = divmod(sku, 2)
    base[qy * 48 : (qy + 1) * 48, qx * 48 : (qx + 1) * 48] += 40  # equal in r, g, b
    base += rng.normal(0, 2, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def make_manifest(root: Path, grade_labels: tuple[str, ...] = GRADES) -> Path:
    rng = np.random.default_rng(0)
    records = []
    splits = ["test", "test", "val", "train"]
    for grade in range(5):
        for sku in range(2):
            for rep in range(4):
                fmt = "PNG" if rep % 2 else "JPEG"
                name = f"g{grade}_s{sku}_{rep}.{'png' if fmt == 'PNG' else 'jpg'}"
                (root / "img").mkdir(parents=True, exist_ok=True)
                (root / "img" / name).write_bytes(encode(_photo(grade, sku, rng), fmt, quality=95))
                records.append(
                    ManifestRecord(
                        id=name,
                        image=root / "img" / name,
                        grade=grade_labels[grade],
                        damage=("crack",) if grade >= 3 else (),
                        category="toy",
                        sku=f"sku{sku}",
                        split=splits[rep],
                    )
                )
    path = root / "manifest.jsonl"
    write_manifest(path, ManifestHeader(grade_labels, DAMAGE, "tests", "evaluate test"), records)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    model = build_test_model(root / "model.onnx")
    # A temperature of 2 in the card: the "before calibration" view must differ.
    write_card(
        model, replace(card_of(model), temperature=2.0, thresholds={"auto_approve_confidence": 0.8})
    )
    return model, make_manifest(root)


def test_evaluate_writes_report_metrics_and_plots(setup: tuple[Path, Path], tmp_path: Path) -> None:
    model, manifest_path = setup
    metrics = evaluate_model(model, load_manifest(manifest_path), tmp_path / "out", progress=False)
    out = tmp_path / "out"
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    for name in ("confusion_matrix", "reliability", "coverage", "damage_roc"):
        png = out / metrics["plots"][name]
        assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 5000
    report = (out / "report.md").read_text()
    assert "| grade accuracy | 100.0% |" in report
    assert "![reliability](reliability.png)" in report
    assert "0.800 (suggested)" in report


def test_evaluate_metrics_have_known_values(setup: tuple[Path, Path], tmp_path: Path) -> None:
    model, manifest_path = setup
    m = evaluate_model(model, load_manifest(manifest_path), tmp_path, progress=False)
    assert m["split"] == "test" and m["count"] == 20
    g = m["grade"]
    assert g["accuracy"] == 1.0 and g["mean_abs_error"] == 0.0 and g["macro_f1"] == 1.0
    assert g["confusion_matrix"] == (4 * np.eye(5, dtype=int)).tolist()
    assert g["per_class"]["C_good"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 4}
    c = m["calibration"]
    assert c["temperature"] == 2.0
    assert c["ece_before"] != pytest.approx(c["ece_after"], abs=1e-3)
    d = m["damage"]
    assert d["auroc"]["crack"] == 1.0  # crack rises with redness; grades 3-4 carry it
    assert d["auroc"]["tear"] is None and any("'tear'" in n for n in d["notes"])
    assert d["macro_auroc"] is not None
    assert m["embedding"]["sku_pair_auroc"] == 1.0  # layouts separate the two SKUs
    assert m["embedding"]["same_pairs"] == 2 * 45 and m["embedding"]["different_pairs"] == 100
    rows = {r["threshold"]: r for r in m["coverage"]["table"]}
    assert rows[0.5]["coverage"] == 1.0 and rows[0.5]["accuracy"] == 1.0
    assert rows[0.99]["coverage"] == 0.0  # the test model never gets that confident


def test_evaluate_val_split(setup: tuple[Path, Path], tmp_path: Path) -> None:
    model, manifest_path = setup
    m = evaluate_model(model, load_manifest(manifest_path), tmp_path, split="val", progress=False)
    assert m["split"] == "val" and m["count"] == 10


def test_cli_evaluate(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, manifest_path = setup
    code = main(
        [
            "evaluate",
            "--model",
            str(model),
            "--data",
            str(manifest_path),
            "--out",
            str(tmp_path / "cli"),
            "--no-progress",
        ]
    )
    assert code == 0
    assert "accuracy 100.0%" in capsys.readouterr().out
    assert (tmp_path / "cli" / "report.md").is_file()


def test_cli_evaluate_missing_model(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, manifest_path = setup
    code = main(
        [
            "evaluate",
            "--model",
            str(tmp_path / "nope.onnx"),
            "--data",
            str(manifest_path),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_evaluate_bad_manifest(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, _ = setup
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "returnlens-manifest", "version": 1}\nnot json\n')
    code = main(
        ["evaluate", "--model", str(model), "--data", str(bad), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "manifest" in err and "invalid_manifest" in err


def test_cli_evaluate_label_mismatch(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, _ = setup
    other = make_manifest(tmp_path, grade_labels=("a", "b", "c", "d", "e"))
    code = main(
        ["evaluate", "--model", str(model), "--data", str(other), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "do not match the model's" in err and "label_mismatch" in err


def test_cli_evaluate_missing_image(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, _ = setup
    path = make_manifest(tmp_path)
    manifest = load_manifest(path)
    victim = manifest.split("test")[0].image
    victim.write_bytes(b"\xff\xd8\xff truncated jpeg")
    code = main(
        [
            "evaluate",
            "--model",
            str(model),
            "--data",
            str(path),
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and victim.name in err and "Traceback" not in err


def test_photos_are_decoded_exactly_as_serving_decodes_them(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    """A phone-sized JPEG is DCT-downscaled while decoding; evaluation must get the very
    pixels serving's Grader gets, or its numbers describe another input."""
    from tests.photo_factory import item_scene
    from training.evaluate import load_rgb
    from vision.model import OnnxModel
    from vision.pipeline import Grader

    model, _ = setup
    path = tmp_path / "phone.jpg"
    path.write_bytes(encode(item_scene(3, size=(4000, 3000)).rgb, "JPEG"))
    served = Grader(OnnxModel(model)).decode(path.read_bytes()).rgb
    ours = load_rgb(path, 32)
    assert served.shape[1] < 4000  # the downscale really happened
    assert ours.shape == served.shape and np.array_equal(ours, served)


def test_evaluation_and_registry_are_torch_free() -> None:
    """`returnlens evaluate` and `returnlens model` run in a serving install."""
    import subprocess
    import sys

    code = (
        "import sys, training.evaluate, vision.registry, training.quantize, "
        "training.cli_model, training.calibrate, training.metrics; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    assert done.returncode == 0, done.stderr
