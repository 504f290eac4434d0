"""The benchmark harness behind ``returnlens bench`` (issue 8).

Benchmarks are not tests: nothing here asserts a timing. Every section measures what
the product does against the physical floor of the same work, and reports *ratios*
from one run, because absolute times on shared machines drift.

Modules (each one section, each torch-free at import; torch is imported lazily by the
sections that need it, so ``import benchmarks.harness`` never pulls torch):

* ``common``: configuration, machine facts, percentiles, RSS from ``/proc``;
* ``models``: which ONNX model is measured (and a same-architecture torch module);
* ``inputs``: deterministic 12-megapixel phone-like and 1600 px web JPEGs, one rendered
  scene per timed photo (``scenes``: the gate-passing renders, cached on disk);
* ``service_load``: a live ``returnlens serve`` under load (latency, photos/s, RSS);
* ``floor`` and ``naive``: in-process decode + ONNX floor, Pillow + torch eager baseline;
* ``runtime``: ORT fp32 vs int8, ORT vs torch eager, intra-op threads and workers;
* ``dock``: the dock station figures through ``benchmarks/dock_bench.py``;
* ``training_bench``: images/s of the default recipe and the data-loading share;
* ``memory``: worker peak RSS under load, dock station RSS over 10,000 frames;
* ``report``: ``SUMMARY.md``; ``runner``: the order of the sections.
"""

from benchmarks.harness.common import SECTIONS, BenchConfig

__all__ = ["SECTIONS", "BenchConfig"]
