"""Section "accuracy": is the grade right, on the dock and in shoppers' photos?

Speed figures say nothing about whether a B_like_new parcel is sent to salvage. This
section measures the grade where decisions are made:

* **dock** (``accuracy_dock``): simulator videos with several seeds through the
  standalone station, each inspection matched to the simulator's ground truth;
* **shopper** (``accuracy_shopper``): held-out synthetic photos at 640-1600 px through
  the service's grading chain.

Targets (issue 14): dock exact grade >= 95% and no good (A/B/C) item routed to salvage,
liquidation or recycle. Each figure is printed beside its target with "missed" when
missed; nothing here fails the run, because a benchmark reports and a test asserts.
The confusion matrices go to ``accuracy_confusion.png`` beside the JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.harness.accuracy_metrics import plot_confusions
from benchmarks.harness.common import BenchConfig, log

DOCK_EXACT_TARGET = 0.95
GOOD_TO_SALVAGE_TARGET = 0
PNG = "accuracy_confusion.png"


def _guard(what: str, fn: Any, *args: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = fn(*args)
        return result
    except Exception as exc:  # one failing part must not lose the other's figures
        log(f"  accuracy {what} failed: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"[:1000]}


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "n/a"


def targets(dock: dict[str, Any]) -> dict[str, Any]:
    """Each target with its measured value and whether it was met (None: not measured)."""
    exact = (dock.get("grades") or {}).get("exact_accuracy")
    salvage = (dock.get("good_written_off") or {}).get("any")
    return {
        "dock_exact_accuracy": {
            "value": exact,
            "target": f">= {DOCK_EXACT_TARGET}",
            "met": None if exact is None else exact >= DOCK_EXACT_TARGET,
        },
        "dock_good_items_to_salvage": {
            "value": salvage,
            "target": f"== {GOOD_TO_SALVAGE_TARGET}",
            "met": None if salvage is None else salvage == GOOD_TO_SALVAGE_TARGET,
        },
    }


def verdict(met: Any) -> str:
    return {True: "met", False: "missed"}.get(met, "not measured")


def run_accuracy(cfg: BenchConfig, model: Path) -> dict[str, Any]:
    from benchmarks.harness.accuracy_dock import dock_accuracy
    from benchmarks.harness.accuracy_shopper import shopper_accuracy

    dock = _guard("dock", dock_accuracy, cfg, model)
    shopper = _guard("shopper", shopper_accuracy, cfg, model)
    goals = targets(dock)
    g = dock.get("grades") or {}
    log(
        f"  accuracy: dock exact {_pct(g.get('exact_accuracy'))} (target >= "
        f"{_pct(DOCK_EXACT_TARGET)}, {verdict(goals['dock_exact_accuracy']['met'])}), "
        f"within one {_pct(g.get('within_one_accuracy'))}, good items to salvage "
        f"{goals['dock_good_items_to_salvage']['value']} (target 0, "
        f"{verdict(goals['dock_good_items_to_salvage']['met'])}), review {dock.get('review')}"
    )
    s = shopper.get("grades") or {}
    log(
        f"  accuracy: shopper exact {_pct(s.get('exact_accuracy'))}, within one "
        f"{_pct(s.get('within_one_accuracy'))}, gate pass {_pct(shopper.get('gate_pass_rate'))}"
    )
    png = plot_confusions(
        [("dock", dock.get("grades") or {}), ("shopper (gate passed)", s)], cfg.out / PNG
    )
    return {
        "targets": goals,
        "dock": dock,
        "shopper": shopper,
        "confusion_png": png.name if png else None,
    }


def summary_lines(acc: Any) -> list[str]:
    """The accuracy block of SUMMARY.md (empty when the section has not run)."""
    if not isinstance(acc, dict) or not acc:
        return []
    dock, shop = acc.get("dock") or {}, acc.get("shopper") or {}
    goals = acc.get("targets") or targets(dock)
    g, s = dock.get("grades") or {}, shop.get("grades") or {}
    written = dock.get("good_written_off") or {}
    rows = [
        (
            f"Dock exact grade ({g.get('n', 'n/a')} items, {len(dock.get('videos', []))} videos)",
            _pct(g.get("exact_accuracy")),
            f">= {_pct(DOCK_EXACT_TARGET)}",
            verdict(goals["dock_exact_accuracy"]["met"]),
        ),
        ("Dock within one grade", _pct(g.get("within_one_accuracy")), "-", ""),
        (
            "Dock good (A/B/C) items routed to salvage / liquidation / recycle",
            f"{written.get('any', 'n/a')} (salvage tier {written.get('salvage_tier')}, "
            f"liquidation {written.get('liquidation')}, recycle {written.get('recycle')})",
            "0",
            verdict(goals["dock_good_items_to_salvage"]["met"]),
        ),
        (
            "Dock good items the grade alone would route there (review skipped)",
            str((dock.get("good_written_off_without_review") or {}).get("any", "n/a")),
            "-",
            "",
        ),
        (
            "Dock items sent to review instead of routed",
            f"{dock.get('review', 'n/a')} of {dock.get('inspected', 'n/a')}",
            "-",
            "",
        ),
        (
            "Dock items the station missed / extra inspections",
            f"{len(dock.get('missed') or [])} / {dock.get('extra_inspections', 'n/a')}",
            "-",
            "",
        ),
        ("Shopper gate pass rate (640-1600 px)", _pct(shop.get("gate_pass_rate")), "-", ""),
        ("Shopper exact grade (gate passed)", _pct(s.get("exact_accuracy")), "-", ""),
        ("Shopper within one grade (gate passed)", _pct(s.get("within_one_accuracy")), "-", ""),
        (
            "Shopper abstained as unfamiliar (gate passed)",
            _pct(shop.get("abstain_share"))
            if shop.get("unfamiliarity_score")
            else "n/a (the model has no unfamiliarity score)",
            "-",
            "",
        ),
    ]
    flags = ", ".join(f"{k} {v}" for k, v in sorted((dock.get("review_flags") or {}).items()))
    out = ["## Accuracy", ""]
    for part, data in (("dock", dock), ("shopper", shop)):
        if "error" in data:
            out += [f"The {part} part failed: {data['error']}", ""]
    out += ["| Figure | Value | Target | Met |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    out.append("")
    if flags:
        out += [f"Flags of the dock items sent to review: {flags}.", ""]
    for title, fig in (("Dock", g), ("Shopper (gate passed)", s)):
        if fig.get("n"):
            labels = fig["labels"]
            out += [f"{title} confusion (rows true, columns predicted):", ""]
            out += ["| true \\ predicted | " + " | ".join(labels) + " |"]
            out += ["|---|" + "---|" * len(labels)]
            out += [
                f"| {lab} | " + " | ".join(str(c) for c in row) + " |"
                for lab, row in zip(labels, fig["confusion"], strict=True)
            ]
            out.append("")
    if acc.get("confusion_png"):
        out += [f"Confusion matrices: `{acc['confusion_png']}`.", ""]
    return out
