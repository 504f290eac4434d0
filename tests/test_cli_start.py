"""The CLI root loads only what the command being run needs.

``returnlens --help`` lists every command from ``returnlens.cli.COMMANDS`` without
importing any area (no SQLAlchemy, OpenCV, NumPy, ONNX Runtime or PyTorch: those took
it to 1.5 s); a command imports its own group only. The listed lines are checked against
what each group really registers, so the static list cannot drift from the commands.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from returnlens.cli import COMMANDS, GROUPS, build_parser

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sqlalchemy", "cv2", "numpy", "onnxruntime", "torch", "fastapi", "yaml")


def _registered(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a.help for a in sub._choices_actions}


@pytest.mark.parametrize("group", list(GROUPS))
def test_each_group_registers_exactly_the_listed_commands(group: str) -> None:
    listed = {c: line for c, (g, line) in COMMANDS.items() if g == group}
    assert _registered(build_parser([group])) == listed


def _modules_after(argv: list[str]) -> tuple[int, list[str]]:
    code = (
        "import json, sys\n"
        "from returnlens.cli import main\n"
        "try:\n"
        f"    rc = main({argv!r})\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        "print(json.dumps(sorted(m for m in sys.modules if '.' not in m)), file=sys.stderr)\n"
        "sys.exit(rc or 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    return proc.returncode, json.loads(proc.stderr.strip().splitlines()[-1])


def test_help_imports_no_area() -> None:
    rc, modules = _modules_after(["--help"])
    assert rc == 0
    assert [m for m in HEAVY if m in modules] == []


def test_a_command_imports_its_group_only() -> None:
    rc, modules = _modules_after(["jobs", "--help"])
    assert rc == 0
    assert "torch" not in modules and "ray" not in modules and "boto3" not in modules
