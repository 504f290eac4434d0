"""``benchmarks/copy_rows_diff.py``: a changed row is counted, a verdict flip is told apart."""

from __future__ import annotations

import pytest

from benchmarks.copy_rows_diff import compare


def _row(i: int, score: float, inliers: int = 40) -> dict[str, object]:
    return {"i": i, "edit": "crop", "best_score": score, "own_inliers": inliers}


def test_same_rows_differ_nowhere() -> None:
    rows = [_row(0, 0.9), _row(1, 0.1)]
    assert compare(rows, [dict(r) for r in rows], 0.8) == {
        "queries": 2, "rows_differ": 0, "verdict_flips": 0, "first": []
    }  # fmt: skip


def test_a_changed_score_and_a_flip_are_told_apart() -> None:
    before = [_row(0, 0.9), _row(1, 0.81), _row(2, 0.3)]
    after = [_row(0, 0.9, inliers=41), _row(1, 0.79), _row(2, 0.3)]
    res = compare(before, after, 0.8)
    assert res["rows_differ"] == 2
    assert res["verdict_flips"] == 1  # only query 1 crossed the threshold
    assert res["first"] == [{"own_inliers": (40, 41)}, {"best_score": (0.81, 0.79)}]


def test_runs_of_other_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="answered 1 and 2"):
        compare([_row(0, 0.9)], [_row(0, 0.9), _row(1, 0.1)], 0.8)
