"""A serving-only install: torch commands end with one sentence naming the missing extra.

Building a real serving-only virtualenv takes minutes, so the install is simulated in a
child process by an import hook that makes the ``train`` extra's modules unfindable,
exactly as they are when ``pip install returnlens`` did not install them. Everything
else (the CLI, its argument parsing, the handlers) is the real code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from returnlens.cli import NEEDS_TRAIN_EXTRA, TRAIN_EXTRA_MODULES

ROOT = Path(__file__).resolve().parents[1]

HIDE_TRAIN_EXTRA = """
import importlib.abc, sys
HIDDEN = {hidden!r}
class HideTrainExtra(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, HideTrainExtra())
from returnlens.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_without_train_extra(*argv: str) -> subprocess.CompletedProcess[str]:
    code = HIDE_TRAIN_EXTRA.format(hidden=sorted(TRAIN_EXTRA_MODULES))
    return subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "argv",
    [
        ("train", "--manifest", "missing.jsonl", "--out", "runs/never"),
        ("export", "--checkpoint", "missing.pt", "--data", "missing.jsonl", "--out", "never.onnx"),
        ("bench", "--quick", "--only", "training"),
    ],
)
def test_torch_commands_name_the_missing_extra(argv: tuple[str, ...], tmp_path: Path) -> None:
    assert argv[0] in NEEDS_TRAIN_EXTRA
    proc = run_without_train_extra(*argv)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"`returnlens {argv[0]}` needs the training extra" in lines[0]
    assert "pip install 'returnlens[train]'" in lines[0]
    assert "[missing_extra]" in lines[0]


def test_torch_free_commands_still_run_without_the_extra(tmp_path: Path) -> None:
    """``evaluate`` runs the ONNX file, ``synth`` and ``dataset`` are numpy: no torch."""
    out = tmp_path / "synth"
    proc = run_without_train_extra(
        "synth",
        "--out",
        str(out),
        "--count",
        "6",
        "--seed",
        "1",
        "--size",
        "64",
        "--workers",
        "1",
        "--no-contact-sheet",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "manifest.jsonl").is_file()
    proc = run_without_train_extra("dataset", "validate", str(out / "manifest.jsonl"))
    assert proc.returncode == 0, proc.stderr


def test_a_lazy_torch_import_inside_a_handler_is_the_same_sentence() -> None:
    """The safety net: a handler that imports a hidden module mid-run still gets one line."""
    from returnlens import cli

    exc = ModuleNotFoundError("No module named 'torch.nn'", name="torch.nn")
    assert cli.missing_extra(exc) == "torch"
    assert cli.missing_extra(ModuleNotFoundError("x", name="yaml")) is None
