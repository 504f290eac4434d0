"""``returnlens check-photo`` and ``grade``: reports, exit codes, bad files (never a
traceback), and ``grade``'s unfamiliarity and abstention fields."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.commands import photo as photo_cmd
from tests import photo_factory as pf

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str]) -> int:
    """Parse with only this module's commands (independent of the other areas)."""
    parser = argparse.ArgumentParser(prog="returnlens")
    photo_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("photos")
    scene = pf.item_scene(21, kind="mug", background="plain")
    out = {
        "good": pf.encode(scene.rgb, "JPEG", quality=90),
        "good_png": pf.encode(scene.rgb, "PNG"),
        "blurry": pf.encode(pf.gaussian_blur(scene.rgb, 6), "JPEG"),
        "dark": pf.encode(pf.exposure(scene.rgb, 1 / 16), "JPEG"),
        "truncated": pf.encode(scene.rgb, "JPEG")[:5000],
        "bomb": pf.png_bomb(),
        "random": np.random.default_rng(0).integers(0, 256, 3000, np.uint8).tobytes(),
        "gif": pf.encode(scene.rgb[:64, :64], "GIF"),
        "empty": b"",
    }
    paths = {}
    for name, data in out.items():
        paths[name] = d / f"{name}.jpg"  # names lie on purpose: bytes decide
        paths[name].write_bytes(data)
    paths["missing"] = d / "does-not-exist.jpg"
    paths["directory"] = d
    return paths


def test_good_photo_passes(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["check-photo", str(files["good"]), str(files["good_png"])]) == 0
    out = capsys.readouterr().out
    assert out.count(": PASS (shopper profile, 1200 x 900") == 2
    for name in (
        "blur",
        "underexposed",
        "overexposed",
        "glare",
        "resolution",
        "coverage",
        "cut_off",
    ):
        assert f"ok   {name}" in out


def test_failing_photo_exits_1_with_advice(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["check-photo", str(files["good"]), str(files["blurry"])]) == 1
    out = capsys.readouterr().out
    assert f"{files['blurry']}: RETAKE" in out
    assert "FAIL blur" in out and "Hold the phone steady" in out


def test_json_output(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = _run(
        ["check-photo", "--json", str(files["good"]), str(files["dark"]), str(files["truncated"])]
    )
    assert code == 2  # an unreadable file outranks a failed gate
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert [r["passed"] for r in results] == [True, False, None]
    assert results[0]["format"] == "jpeg" and len(results[0]["sha256"]) == 64
    dark = {c["name"]: c for c in results[1]["quality"]["checks"]}
    assert dark["underexposed"]["passed"] is False and dark["underexposed"]["message"]
    assert results[2]["error"]["code"] == "unreadable_image"
    assert f"{files['truncated']}" in captured.err and "[unreadable_image]" in captured.err


def test_dock_profile(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["check-photo", "--profile", "dock", "--json", str(files["good"])]) == 0
    assert json.loads(capsys.readouterr().out)[0]["quality"]["profile"] == "dock"


@pytest.mark.parametrize(
    "name,code",
    [
        ("truncated", "unreadable_image"),
        ("bomb", "too_many_pixels"),
        ("random", "unsupported_media_type"),
        ("gif", "unsupported_media_type"),
        ("empty", "unreadable_image"),
        ("missing", "file_not_found"),
        ("directory", "not_a_file"),
    ],
)
def test_bad_files_one_line_each_and_continue(
    files: dict[str, Path], name: str, code: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["check-photo", str(files[name]), str(files["good"])]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert str(files[name]) in lines[0] and f"[{code}]" in lines[0]
    assert "Traceback" not in captured.err
    assert f"{files['good']}: PASS" in captured.out  # the next file was still checked


def test_oversized_file_is_not_read_whole(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "huge.jpg"
    with big.open("wb") as fh:  # sparse 30 MB file: over the 25 MB limit
        fh.write(files["good"].read_bytes())
        fh.seek(30 * 1024 * 1024)
        fh.write(b"\0")
    assert _run(["check-photo", str(big)]) == 2
    assert "[too_large]" in capsys.readouterr().err


def test_console_script_end_to_end(files: dict[str, Path]) -> None:
    """The real entry point in a fresh process: exit codes and no traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "returnlens.cli", "check-photo"]
    ok = subprocess.run(
        [*cmd, str(files["good"])], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [*cmd, str(files["bomb"]), str(files["missing"]), str(files["blurry"])],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert bad.stderr.count("error:") == 2
    assert "RETAKE" in bad.stdout


def test_profile_choices_match_the_quality_profiles() -> None:
    from vision.quality import PROFILES

    parser = argparse.ArgumentParser(prog="returnlens")
    sub = parser.add_subparsers(dest="command", required=True)
    photo_cmd.register(sub)
    check = sub.choices["check-photo"]
    action = next(a for a in check._actions if a.dest == "profile")
    assert set(action.choices or ()) == set(PROFILES)


SHIPPED = ROOT / "serving" / "models" / "returnlens-default.onnx"


@pytest.fixture(scope="module")
def grade_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A photo of the model's own world (a held-out synthetic render), a foreign photo,
    and the shipped model without its unfamiliarity score (an older model)."""
    import onnx
    from skimage import data

    from vision.registry import card_of, write_card
    from vision.synth import SynthConfig
    from vision.synth.dataset import render_record
    from vision.unfamiliarity_graph import strip_score

    d = tmp_path_factory.mktemp("grade")
    record, jpeg, _ = render_record(SynthConfig(count=40, seed=7, image_size=800), 2)
    assert record["split"] == "test"  # never trained on
    paths = {"synth": d / "synth.jpg", "coffee": d / "coffee.jpg", "old": d / "old.onnx"}
    paths["synth"].write_bytes(jpeg)
    canvas = np.full((900, 1200, 3), 235, np.uint8)  # the cup photo, whole, on a table
    canvas[150:550, 300:900] = data.coffee()
    paths["coffee"].write_bytes(pf.encode(canvas, "JPEG", quality=90))
    card = card_of(SHIPPED)
    assert card.unfamiliarity is not None
    onnx.save(strip_score(onnx.load(str(SHIPPED)), card.unfamiliarity.output), str(paths["old"]))
    write_card(paths["old"], replace(card, unfamiliarity=None))
    return paths


def _grade_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert _run(["grade", "--json", *argv]) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_grade_json_shows_unfamiliarity_and_abstention(
    grade_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files = [str(grade_files["synth"]), str(grade_files["coffee"])]
    out = _grade_json(["--profile", "dock", "--model", str(SHIPPED), *files], capsys)
    synth, coffee = out["results"]
    print({e["path"]: (e["unfamiliarity"], e["familiar"]) for e in (synth, coffee)})
    for entry in (synth, coffee):
        assert isinstance(entry["unfamiliarity"], float)
        assert entry["scores"] is not None  # both pass the gate: each is graded
    assert synth["familiar"] is True and coffee["familiar"] is False
    assert synth["abstain"] is False and synth["abstain_reason"] is None
    assert coffee["abstain"] is True
    assert "outside what the model was trained on" in coffee["abstain_reason"]


def test_grade_item_abstains_when_any_photo_is_unfamiliar(
    grade_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files = [str(grade_files["synth"]), str(grade_files["coffee"])]
    out = _grade_json(["--item", "--profile", "dock", "--model", str(SHIPPED), *files], capsys)
    item = out["results"][-1]
    assert item["path"] == "item" and item["familiar"] is False and item["abstain"] is True
    assert "a person should grade the item" in item["abstain_reason"]
    _run(["grade", "--item", "--profile", "dock", "--model", str(SHIPPED), *files])
    text = capsys.readouterr().out
    assert "unfamiliarity" in text and "ABSTAIN:" in text


def test_grade_with_an_older_model_cannot_tell(
    grade_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(grade_files["old"])
    out = _grade_json(["--profile", "dock", "--model", model, str(grade_files["synth"])], capsys)
    (entry,) = out["results"]
    assert entry["unfamiliarity"] is None and entry["familiar"] is None
    assert entry["abstain"] is True and "cannot tell" in entry["abstain_reason"]
    _run(["grade", "--model", model, str(grade_files["synth"])])
    assert "has no unfamiliarity score" in capsys.readouterr().out
