"""``benchmarks/perf_service.py``'s summary of a ``perf report``: shares by shared object,
and the cyclic collector's and the kernel's share (perf itself runs only in the script)."""

from __future__ import annotations

from benchmarks.perf_service import summarise


def test_shares_are_summed_by_object_and_the_collector_is_picked_out() -> None:
    rows = [
        (20.0, "libpython3.11.so.1.0", "_PyEval_EvalFrameDefault"),
        (1.5, "libpython3.11.so.1.0", "gc_collect_main"),
        (0.5, "libpython3.11.so.1.0", "visit_reachable"),
        (0.25, "libpython3.11.so.1.0", "visit_decref"),
        (0.75, "libc.so.6", "gc_collect_main"),  # the same name outside CPython: not counted
        (30.0, "onnxruntime_pybind11_state.so", "0x16c7117"),
        (4.0, "[kernel.kallsyms]", "finish_task_switch.isra.0"),
        (1.0, "[kernel.kallsyms]", "clear_page_erms"),
    ]
    s = summarise(rows)
    assert s["python_cyclic_gc_pct"] == 2.25
    assert s["kernel_pct"] == 5.0
    shares = s["share_by_object_pct"]
    assert list(shares) == [
        "onnxruntime_pybind11_state.so",
        "libpython3.11.so.1.0",
        "[kernel.kallsyms]",
        "libc.so.6",
    ]
    assert shares["libpython3.11.so.1.0"] == 22.25
