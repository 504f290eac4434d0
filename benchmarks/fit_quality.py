"""Fit the photo-quality gate's thresholds on the photos shoppers take; write the record.

    python -m benchmarks.fit_quality [--per-set N] [--cars N] [--out benchmarks/results]

Why a script: the gate's defaults (``vision.quality.QualityThresholds``) must come from
measurements, and the tests that judge the gate (``tests/test_quality_fit.py``) must run
on photos the thresholds were not fitted on. The photos (clean sets, degradations, the
FIT / HELD-OUT split by name hash) are ``benchmarks/quality_photos.py``; this script
measures them through the serving path (JPEG bytes -> ``decode_for_grading`` ->
``vision.quality.measure``), fits each threshold on the FIT half and writes the rates of
both halves to ``benchmarks/results/quality_fit.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.quality_photos import (
    CAR_DATASET,
    DEGRADATIONS,
    HELD_OUT_SHARE,
    ROOT,
    Photo,
    clean_photos,
    cut_off_photos,
    is_held_out,
    jpeg,
)
from vision.pipeline import decode_for_grading
from vision.quality import QualityMeasures, QualityThresholds, measure

RESULTS = ROOT / "benchmarks" / "results"


def measure_bytes(data: bytes) -> QualityMeasures:
    """The gate's measurements on an upload, decoded the way serving decodes it."""
    return measure(decode_for_grading(data, input_size=0))


# ------------------------------------------------------------------------ fitting
# measurement field, direction of the check, check name
FITTED = (
    ("sharpness", "min", "blur", "min_sharpness"),
    ("brightness", "min", "underexposed", "min_brightness"),
    ("clipped_fraction", "max", "overexposed", "max_clipped_fraction"),
    ("glare_fraction", "max", "glare", "max_glare_fraction"),
    ("edge_cut", "max", "cut_off", "max_edge_cut"),
)


def fit_threshold(good: Iterable[float], bad: Iterable[float], direction: str) -> float:
    """The threshold that maximises min(pass rate of good, stop rate of bad); among ties,
    the middle of the widest gap, so neither side sits at the edge."""
    g = np.sort(np.asarray(list(good), np.float64))
    b = np.sort(np.asarray(list(bad), np.float64))
    if direction == "max":  # flip to a "min" problem
        g, b = -g[::-1], -b[::-1]
    cands = np.unique(np.concatenate([g, b]))
    mids = np.concatenate([[cands[0] - 1e-6], (cands[1:] + cands[:-1]) / 2, [cands[-1] + 1e-6]])
    passed = 1 - np.searchsorted(g, mids, side="left") / max(len(g), 1)
    stopped = np.searchsorted(b, mids, side="left") / max(len(b), 1)
    score = np.minimum(passed, stopped)
    best = np.flatnonzero(score >= score.max() - 1e-12)
    lo, hi = mids[best[0]], mids[best[-1]]
    # the best interval: from the largest bad value below it to the smallest good above
    below = b[b < hi].max() if (b < hi).any() else lo
    above = g[g > lo].min() if (g > lo).any() else hi
    t = float((max(lo, below) + min(hi, above)) / 2)
    return -t if direction == "max" else t


@dataclass
class Measured:
    """Measurements of one photo (clean or degraded) with its part and set."""

    name: str
    set: str
    held_out: bool
    kind: str  # "clean" or the degradation name
    check: str | None  # the check that must stop it; None for a clean photo
    whole_item: bool
    m: QualityMeasures


def measure_uploads(
    photos: Iterable[tuple[Photo, bytes]], cut_offs: Iterable[tuple[str, bytes]]
) -> list[Measured]:
    """Clean photos, their degradations and the cut-off photos, measured."""
    out = []
    for photo, data in photos:
        held = is_held_out(photo.name)
        out.append(
            Measured(
                photo.name, photo.set, held, "clean", None, photo.whole_item, measure_bytes(data)
            )
        )
        for check, table in DEGRADATIONS.items():
            for kind, degrade in table.items():
                rgb = degrade(photo)
                if rgb is not None:
                    m = measure_bytes(jpeg(rgb))
                    out.append(
                        Measured(photo.name, photo.set, held, kind, check, photo.whole_item, m)
                    )
    for name, data in cut_offs:
        out.append(
            Measured(
                name, "render", is_held_out(name), "cut_off", "cut_off", True, measure_bytes(data)
            )
        )
    return out


def measure_all(
    per_set: int, cars: int, held_out: bool | None = None, browser: int | None = None
) -> list[Measured]:
    """Every photo of ``per_set`` names per generated set (``browser`` for the browser
    set, whose 2048 px renders are the slow ones), ``cars`` car files and ``per_set``
    cut-off photos; only the ``held_out`` half when it is given."""
    return measure_uploads(
        clean_photos(per_set, cars, held_out, browser), cut_off_photos(per_set, held_out)
    )


def fit(rows: list[Measured]) -> dict[str, float]:
    """Fitted thresholds from the FIT part only."""
    fitrows = [r for r in rows if not r.held_out]
    values: dict[str, float] = {}
    for field, direction, check, key in FITTED:
        good = [
            getattr(r.m, field)
            for r in fitrows
            if r.check is None and (check != "cut_off" or r.whole_item)
        ]
        bad = [getattr(r.m, field) for r in fitrows if r.check == check]
        values[key] = round(fit_threshold(good, bad, direction), 3)
    return values


def passes(m: QualityMeasures, t: QualityThresholds, check: str) -> bool:
    """Whether one check passes; the same comparisons as ``vision.quality``."""
    return {
        "blur": m.sharpness >= t.min_sharpness,
        "underexposed": m.brightness >= t.min_brightness,
        "overexposed": m.clipped_fraction <= t.max_clipped_fraction,
        "glare": m.glare_fraction <= t.max_glare_fraction,
        "cut_off": m.edge_cut <= t.max_edge_cut,
        "coverage": m.coverage >= t.min_coverage,
    }[check]


def rates(rows: list[Measured], t: QualityThresholds) -> dict[str, dict[str, object]]:
    """Per part and set: clean pass rate per check (and overall for whole-item photos),
    and the stop rate of each degradation by its check."""
    table: dict[str, dict[str, object]] = {}
    for part, held in (("fit", False), ("held_out", True)):
        sub = [r for r in rows if r.held_out is held]
        clean = [r for r in sub if r.check is None]
        res: dict[str, object] = {}
        for s in sorted({r.set for r in clean}):
            cs = [r for r in clean if r.set == s]
            checks: tuple[str, ...] = ("blur", "underexposed", "overexposed", "glare")
            if cs[0].whole_item:
                checks += ("coverage", "cut_off")
            entry = {c: _rate(passes(r.m, t, c) for r in cs) for c in checks}
            if cs[0].whole_item:
                entry["all"] = _rate(all(passes(r.m, t, c) for c in checks) for r in cs)
            res[f"clean/{s}"] = entry | {"n": len(cs)}
        for kind in sorted({r.kind for r in sub if r.check is not None}):
            ks = [r for r in sub if r.kind == kind]
            check = ks[0].check
            assert check is not None
            res[f"stop/{kind}"] = {
                "check": check,
                "rate": _rate(not passes(r.m, t, check) for r in ks),
                "n": len(ks),
            }
        table[part] = res
    return table


def _rate(flags: Iterable[bool]) -> float:
    f = list(flags)
    return round(sum(f) / len(f), 4) if f else float("nan")


def write_results(
    out: Path, thresholds: dict[str, float], table: dict[str, dict[str, object]], n: int
) -> None:
    """``quality_fit.json`` and ``quality_fit.md``: thresholds and rates, fit vs held-out."""
    from vision.fsio import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)

    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {platform.system()} {platform.release()}, "
        f"python {platform.python_version()}",
        "photos_measured": n,
        "held_out_share": HELD_OUT_SHARE,
        "car_dataset": str(CAR_DATASET) if CAR_DATASET.is_dir() else None,
    }
    blob = {"meta": meta, "thresholds": thresholds, "rates": table}
    atomic_write_text(out / "quality_fit.json", json.dumps(blob, indent=2) + "\n")
    lines = [
        "# Quality gate: fitted thresholds and rates",
        "",
        f"Written by `python -m benchmarks.fit_quality` on {meta['date']} ({meta['machine']});",
        f"{n} photos measured, {HELD_OUT_SHARE:.0%} held out by name hash.",
        "",
        "| threshold | fitted |",
        "|---|---|",
        *[f"| `{k}` | {v} |" for k, v in thresholds.items()],
        "",
    ]
    for part, res in table.items():
        lines += [f"## {part}", "", "| set / degradation | rates | n |", "|---|---|---|"]
        for key, entry in res.items():
            assert isinstance(entry, dict)
            body = ", ".join(
                f"{k} {v:.1%}" if isinstance(v, float) else f"{k} {v}"
                for k, v in entry.items()
                if k != "n"
            )
            lines.append(f"| {key} | {body} | {entry['n']} |")
        lines.append("")
    atomic_write_text(out / "quality_fit.md", "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-set", type=int, default=140, help="photos per generated set")
    parser.add_argument("--cars", type=int, default=400, help="car-damage photos")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = measure_all(args.per_set, args.cars)
    values = fit(rows)
    fitted = QualityThresholds.from_dict(dict(values))
    table = rates(rows, fitted)
    write_results(args.out, values, table, len(rows))
    print(json.dumps({"thresholds": values, "rates": table}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
