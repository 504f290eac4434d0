"""``benchmarks/results/SUMMARY.md`` is built from every section file present, so a
section left from an earlier run must say so, with its date, and one of this run must
not (``benchmarks/harness/report.py``)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.harness.report import write_summary


def _write(out: Path, name: str, data: dict[str, object]) -> None:
    (out / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")


def test_sections_from_earlier_runs_are_named_with_their_dates(tmp_path: Path) -> None:
    _write(tmp_path, "run", {"finished_at": "2026-12-05T00:10:00+0000", "sections": ["dock"]})
    _write(tmp_path, "dock", {"generated_at": "2026-12-05T00:09:00+0000"})
    _write(tmp_path, "memory", {"generated_at": "2026-11-23T20:37:48+0000"})
    text = write_summary(tmp_path).read_text(encoding="utf-8")
    earlier = [line for line in text.splitlines() if line.startswith("From earlier runs")]
    assert earlier == ["From earlier runs, with their dates: memory (2026-11-23T20:37:48+0000)."]


def test_no_such_line_when_every_section_is_this_runs(tmp_path: Path) -> None:
    _write(tmp_path, "run", {"finished_at": "2026-12-05T00:10:00+0000", "sections": ["dock"]})
    _write(tmp_path, "dock", {"generated_at": "2026-12-05T00:09:00+0000"})
    assert "From earlier runs" not in write_summary(tmp_path).read_text(encoding="utf-8")
