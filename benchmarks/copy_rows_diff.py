"""Did a change alter any answer of the copy benchmark? Compare two runs' per-query rows.

``benchmarks/copy_detection.py`` keeps every query's row (scores, inliers, candidates,
the nearest pHash and its distance) in ``<cache>/rows.json``. Run it once on the code
before a change and once after, on the same machine and cache (the renders are shared),
copying ``rows.json`` away after each run, then:

    python -m benchmarks.copy_rows_diff BEFORE/rows.json AFTER/rows.json

Prints how many rows differ, the first few differences, and how many queries changed
their verdict at the policy's ``reused_photo.min_agreement``; exits 1 when any did.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from serving.policy import load_policy


def compare(
    before: list[dict[str, Any]], after: list[dict[str, Any]], threshold: float
) -> dict[str, Any]:
    """Rows that differ (first 10 shown as ``{field: (before, after)}``) and verdict flips."""
    if len(before) != len(after):
        raise ValueError(f"the runs answered {len(before)} and {len(after)} queries")
    differ = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    flips = sum((a["best_score"] >= threshold) != (b["best_score"] >= threshold) for a, b in differ)
    shown = [{k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)} for a, b in differ[:10]]
    return {
        "queries": len(before),
        "rows_differ": len(differ),
        "verdict_flips": flips,
        "first": shown,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    args = ap.parse_args(argv)
    threshold = load_policy().spec.reused_photo.min_agreement
    before, after = (json.loads(p.read_text()) for p in (args.before, args.after))
    res = compare(before, after, threshold)
    print(f"{res['queries']} queries: {res['rows_differ']} rows differ, "
          f"{res['verdict_flips']} verdicts changed at agreement >= {threshold}")  # fmt: skip
    for row in res["first"]:
        print(" ", row)
    return 1 if res["verdict_flips"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
