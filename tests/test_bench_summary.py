"""``benchmarks/results/SUMMARY.md`` is built from every section file present, so a
section file left from an earlier run must say so, with its date, and one written by
this run must not (``benchmarks/harness/report.py``): a file is this run's when it was
generated after the run started, whatever its section's name (the training section
writes ``training_gpu.json`` on a GPU)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.harness.report import write_summary

RUN = {
    "started_at": "2026-12-05T00:05:00+0000",
    "finished_at": "2026-12-05T00:10:00+0000",
    "sections": ["dock", "training"],
}


def _write(out: Path, name: str, data: dict[str, object]) -> None:
    (out / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")


def _earlier(out: Path) -> list[str]:
    text = write_summary(out).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.startswith("From earlier runs")]


def test_sections_from_earlier_runs_are_named_with_their_dates(tmp_path: Path) -> None:
    _write(tmp_path, "run", RUN)
    _write(tmp_path, "dock", {"generated_at": "2026-12-05T00:09:00+0000"})
    _write(tmp_path, "training_gpu", {"generated_at": "2026-12-05T00:08:00+0000"})
    _write(tmp_path, "memory", {"generated_at": "2026-11-23T20:37:48+0000"})
    _write(tmp_path, "bombs", {"note": "no date"})
    assert _earlier(tmp_path) == [
        "From earlier runs, with their dates: memory (2026-11-23T20:37:48+0000), bombs (n/a)."
    ]


def test_no_such_line_when_every_section_is_this_runs(tmp_path: Path) -> None:
    _write(tmp_path, "run", RUN)
    _write(tmp_path, "dock", {"generated_at": "2026-12-05T00:09:00+0000"})
    assert _earlier(tmp_path) == []
