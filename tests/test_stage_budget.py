"""The CPU budget of ``benchmarks/stage_cpu.py``: the floor, the allowance and the bounds
are computed from the stages named, whatever else was timed."""

from __future__ import annotations

import pytest

from benchmarks import stage_cpu as sc


def _stages(**extra: float) -> dict[str, float]:
    cpu = {
        sc.WHOLE: 40.0,  # holds decode 6, inference 20 and the rest of the request thread
        "decode": 6.0,
        sc.ORT: 20.0,
        sc.COPY: 10.0,
        sc.GATE: 8.0,
        sc.CONTEXT: 2.0,
        sc.STORE: 1.0,
        sc.TOKEN: 1.0,
        "decision write": 7.0,  # inside the request thread: not added again
    }
    cpu.update(extra)
    return cpu


def test_the_budget_sets_the_two_checks_against_the_targets_allowance() -> None:
    b = sc.budget(_stages(), cores=2)
    assert b["floor_ms"] == 26.0
    assert b["allowance_over_floor_ms"] == pytest.approx(0.4 * 26.0)
    assert b["gate_and_copy_check_ms"] == 18.0
    assert b["total_ms"] == 62.0  # request thread + copy + gate + context + store + token
    assert b["everything_else_ms"] == 62.0 - 26.0 - 18.0
    # the allowance (10.4) less everything else (18): the rest alone is over the target
    assert b["left_for_the_two_checks_ms"] == pytest.approx(0.4 * 26.0 - 18.0)
    assert b["cpu_ratio"] == pytest.approx(62.0 / 26.0, abs=1e-3)
    assert b["best_cpu_ratio_with_checks"] == pytest.approx(44.0 / 26.0, abs=1e-3)
    assert b["ratio_over_floor_and_checks"] == pytest.approx(62.0 / 44.0, abs=1e-3)
    assert b["best_throughput_ratio_with_checks"] == pytest.approx(26.0 / 44.0, abs=1e-3)
    assert b["c1_latency_floor_ms"] == 31.0


def test_parts_of_a_stage_are_not_counted_twice() -> None:
    """Indented entries are parts of a stage above them (already in its time)."""
    plain = sc.budget(_stages(), cores=2)
    with_parts = sc.budget(_stages(**{"  of the copy check: keypoint fits": 4.0}), cores=2)
    assert with_parts == plain
