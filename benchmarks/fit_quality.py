"""Fit the photo-quality gate's thresholds on the photos shoppers take; write the record.

    python -m benchmarks.fit_quality [--per-set N] [--cars N] [--out benchmarks/results]

Why a script: the gate's defaults (``vision.quality.QualityThresholds``) must come from
measurements, and the tests that judge the gate (``tests/test_quality_fit.py``) must run
on photos the thresholds were not fitted on. Every photo has a name; a fixed hash of the
name puts it in the FIT part (70%) or the HELD-OUT part (30%), so both this script and
the tests draw the same split, whatever the order or count.

Sets (every photo goes through the serving path: JPEG bytes -> ``decode_for_grading``):

- ``render``: the generator's clean renders at 640, 1024 and 1600 px (``vision.synth``);
- ``studio``: the same items on a white, partly clipped studio backdrop (web product
  photos), which must read neither as glare nor as overexposure;
- ``hand``: renders with a hand and forearm reaching in from the bottom edge (an item
  held up to the camera);
- ``browser``: 2048 px renders through the shopper page's downscale (long side to 1600,
  smooth resampling, JPEG quality 0.9, as ``serving/web/static/js/shopper.js`` does);
- ``car``: real car-damage photos from ``../shared/datasets/car-damage-severity`` (close-ups
  and street photos of damage, not taken for a returns gate: only the blur, exposure and
  glare checks apply). ELPV solar-cell images are inspection images and are left out.

Degradations a shopper must retake, made from the clean photos of each part. Strengths are
stated for a 640 px frame (the smallest upload the gate accepts) and scaled with the
photo's long side, because the gate measures on a fixed 512 px working copy: blur is
judged as a share of the frame, like a person looking at the photo on a screen.

- ``gaussian``: sigma 3 (x long/640); ``motion``: 20 px (x long/640) at an angle per photo;
- ``dark``: -3 EV; ``burnt``: exposed until half the frame clips;
- ``glare``: a specular blob of radius 12% of the short side on the item;
- ``cut_off``: the generator's cut-off placement (the item runs 30-50% off one edge).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import platform
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.decode import decode_image
from vision.pipeline import decode_for_grading
from vision.quality import QualityMeasures, QualityThresholds, measure
from vision.synth.dataset import SynthConfig, plan_item
from vision.synth.scene import render_photo

ROOT = Path(__file__).resolve().parents[1]
CAR_DATASET = ROOT.parent / "shared" / "datasets" / "car-damage-severity"
RESULTS = ROOT / "benchmarks" / "results"
RENDER_SIZES = (640, 1024, 1600)
HELD_OUT_SHARE = 0.3
REFERENCE_LONG_SIDE = 640
GAUSS_SIGMA = 3.0
MOTION_PX = 20
DARK_GAIN = 1 / 8  # -3 EV
GLARE_RADIUS = 0.12
BROWSER_SIDE, BROWSER_QUALITY = 1600, 90
SEED = 2024


def is_held_out(name: str) -> bool:
    """Fixed split by name: the same photo is always in the same part."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < HELD_OUT_SHARE


@dataclass(frozen=True)
class Photo:
    """One clean photo: its name, set, RGB pixels and what the gate may expect of it."""

    name: str
    set: str
    rgb: np.ndarray
    whole_item: bool  # an item photo framed whole (the cut-off and coverage checks apply)


# ------------------------------------------------------------------------ encoding
def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return buf.tobytes()


def browser_downscale(rgb: np.ndarray, long_side: int = BROWSER_SIDE) -> bytes:
    """The shopper page's upload: long side to ``long_side`` (never up), smooth
    resampling (canvas ``imageSmoothingQuality = "high"`` ~ area filter), JPEG q 0.9."""
    h, w = rgb.shape[:2]
    s = min(1.0, long_side / max(h, w))
    if s < 1:
        rgb = cv2.resize(
            rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA
        )
    return jpeg(rgb, BROWSER_QUALITY)


def measure_bytes(data: bytes) -> QualityMeasures:
    """The gate's measurements on an upload, decoded the way serving decodes it."""
    return measure(decode_for_grading(data, input_size=0))


# ------------------------------------------------------------------------ clean sets
def _render(
    index: int, size: int, *, background: str | np.ndarray | None, bad: str | None
) -> np.ndarray:
    config = SynthConfig(count=index + 1, seed=SEED, image_size=size)
    plan = plan_item(config, index)
    rng = np.random.default_rng([SEED, 23, index, size])
    rgb, _ = render_photo(plan.sku, plan.state, rng, size, background=background, bad=bad)
    return rgb


def studio_backdrop(size: int, rng: np.random.Generator) -> np.ndarray:
    """A white sweep: clipped at the top, a faint grey falloff toward the bottom."""
    ys = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    level = 262 - rng.uniform(8, 22) * ys
    return np.clip(np.broadcast_to(level, (size, size, 3)), 0, 255).astype(np.float32)


def add_hand(rgb: np.ndarray, seed: int) -> np.ndarray:
    """A forearm and hand reaching up from the bottom edge to hold the item's lower part."""
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    tone = np.array(
        [(224, 172, 140), (198, 134, 100), (141, 85, 60), (236, 188, 160)][seed % 4], np.float32
    ) * rng.uniform(0.9, 1.05)
    cx = w * rng.uniform(0.4, 0.6)
    top = h * rng.uniform(0.6, 0.7)
    palm = np.zeros((h, w), np.uint8)
    cv2.ellipse(palm, (round(cx), round(top)), (round(0.13 * w), round(0.07 * h)), 0, 0, 360, 1, -1)
    arm = np.array(
        [[cx - 0.08 * w, top], [cx + 0.08 * w, top], [cx + 0.1 * w, h], [cx - 0.1 * w, h]],
        np.int32,
    )
    cv2.fillPoly(palm, [arm], 1)
    alpha = cv2.GaussianBlur(palm.astype(np.float32), (0, 0), 0.004 * w)[..., None]
    shade = 0.85 + 0.15 * np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    out = rgb * (1 - alpha) + tone * shade * alpha
    return np.clip(out, 0, 255).astype(np.uint8)


def car_files(limit: int) -> list[Path]:
    """Up to ``limit`` car-damage photos, picked by name hash (every split and class)."""
    if not CAR_DATASET.is_dir():
        return []
    files = sorted(CAR_DATASET.glob("*/*/*.jpg"))
    ranked = sorted(files, key=lambda p: hashlib.sha256(p.name.encode()).digest())
    return sorted(ranked[:limit])


def clean_photos(per_set: int, cars: int) -> Iterator[tuple[Photo, bytes]]:
    """Every clean photo with its upload bytes."""
    for i in range(per_set):
        size = RENDER_SIZES[i % len(RENDER_SIZES)]
        rgb = _render(i, size, background=None, bad=None)
        yield Photo(f"render-{size}-{i}", "render", rgb, True), jpeg(rgb)
        j = 1000 + i
        rgb = _render(j, size, background=studio_backdrop(size, np.random.default_rng(j)), bad=None)
        yield Photo(f"studio-{size}-{j}", "studio", rgb, True), jpeg(rgb)
        j = 2000 + i
        rgb = add_hand(_render(j, size, background=None, bad=None), j)
        yield Photo(f"hand-{size}-{j}", "hand", rgb, True), jpeg(rgb)
        j = 3000 + i
        rgb = _render(j, 2048, background=None, bad=None)
        data = browser_downscale(rgb)
        yield Photo(f"browser-1600-{j}", "browser", decode_image(data).rgb, True), data
    for path in car_files(cars):
        data = path.read_bytes()
        rgb = decode_image(data, target_long_side=None).rgb
        yield Photo(f"car-{path.parent.parent.name}-{path.name}", "car", rgb, False), data


# ------------------------------------------------------------------------ degradations
def _scale(rgb: np.ndarray) -> float:
    return max(rgb.shape[:2]) / REFERENCE_LONG_SIDE


def gaussian(rgb: np.ndarray, sigma: float = GAUSS_SIGMA) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), sigma * _scale(rgb))


def motion(rgb: np.ndarray, length: float = MOTION_PX, angle_deg: float = 20.0) -> np.ndarray:
    n = max(3, round(length * _scale(rgb)))
    line = np.zeros((n, n), np.float32)
    line[n // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), angle_deg, 1.0)
    k = np.asarray(cv2.warpAffine(line, rot, (n, n)), np.float32)
    return np.asarray(cv2.filter2D(rgb, -1, k / k.sum()))


def exposure(rgb: np.ndarray, gain: float) -> np.ndarray:
    """Exposure change in linear light (gain 1/8 = -3 EV)."""
    lin = (np.arange(256, dtype=np.float64) / 255.0) ** 2.2 * gain
    lut = (np.clip(lin, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)
    return cv2.LUT(np.ascontiguousarray(rgb), lut)


def burn_out(rgb: np.ndarray) -> np.ndarray:
    """Overexposed until half of the frame clips (the meter exposed for a dark corner)."""
    median = float(np.median(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))) / 255.0
    return exposure(rgb, 1.0 / max(median**2.2, 1e-3))


def add_glare(
    rgb: np.ndarray, centre: tuple[float, float] = (0.5, 0.5), radius: float = GLARE_RADIUS
) -> np.ndarray:
    """A saturated specular blob (flash or window reflection) with a soft halo."""
    h, w = rgb.shape[:2]
    r = radius * min(h, w)
    xx = (np.arange(w, dtype=np.float32) - centre[0] * w) / r
    yy = (np.arange(h, dtype=np.float32) - centre[1] * h) / r
    strength = np.clip(1.6 - 0.9 * (xx[None, :] ** 2 + yy[:, None] ** 2), 0, 1)[..., None]
    return np.clip(rgb * (1 - strength) + 255 * strength, 0, 255).astype(np.uint8)


def _median_luma(rgb: np.ndarray) -> float:
    """A photo whose median already clips (a white studio sweep) cannot be burnt further:
    the burn-out degradation would return it unchanged, so it is not applied there."""
    return float(np.median(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)))


def _angle(name: str) -> float:
    return float(hashlib.sha256(name.encode()).digest()[0] % 180)


# check -> degradation name -> function of a clean photo (None: not applicable)
DEGRADATIONS: dict[str, dict[str, Callable[[Photo], np.ndarray | None]]] = {
    "blur": {
        "gaussian": lambda p: gaussian(p.rgb),
        "motion": lambda p: motion(p.rgb, angle_deg=_angle(p.name)),
    },
    "underexposed": {"dark": lambda p: exposure(p.rgb, DARK_GAIN)},
    "overexposed": {"burnt": lambda p: burn_out(p.rgb) if _median_luma(p.rgb) < 230 else None},
    "glare": {"glare": lambda p: add_glare(p.rgb)},
}


def cut_off_photos(count: int) -> Iterator[tuple[str, bytes]]:
    """The generator's cut-off photos (item 30-50% off one edge), sizes 640-1600."""
    for i in range(count):
        size = RENDER_SIZES[i % len(RENDER_SIZES)]
        j = 4000 + i
        yield f"cutoff-{size}-{j}", jpeg(_render(j, size, background=None, bad="cut_off"))


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


def measure_all(per_set: int, cars: int) -> list[Measured]:
    """Clean photos, their degradations and the cut-off photos, measured."""
    out = []
    for photo, data in clean_photos(per_set, cars):
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
    for name, data in cut_off_photos(per_set):
        out.append(
            Measured(
                name, "render", is_held_out(name), "cut_off", "cut_off", True, measure_bytes(data)
            )
        )
    return out


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
    parser.add_argument("--per-set", type=int, default=60, help="photos per generated set")
    parser.add_argument("--cars", type=int, default=300, help="car-damage photos")
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
