"""The gate's fitted thresholds, judged on the HELD-OUT half of each set (issue 14).

The sets and degradations are those of ``benchmarks/quality_photos.py``; the defaults were
fitted by ``benchmarks/fit_quality.py`` on the FIT half. The split is by a fixed hash of
each photo's name and only held-out photos are made here, so none of them took part in
the fit. The committed record (``benchmarks/results/quality_fit.md``) has the same rates
on larger held-out sets (60+ per set and per degradation); this test re-measures a
smaller sample so a regression fails the suite. Run with ``pytest -s`` to see the rates.

Targets from issue 14, asserted as stated: clean generated photos pass every check
>= 95% (pooled over the render, studio, hand-held and browser sets; per set printed);
real car-damage photos pass blur and exposure >= 95% and glare >= 90%; blurred, dark,
burnt-out, glare and cut-off photos are stopped >= 95%; a full decode and serving's
DCT-downscaled decode of the same photo get the same verdict on every check.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import pytest

from benchmarks import fit_quality as fq
from benchmarks import quality_photos as qp
from vision.decode import decode_image
from vision.pipeline import decode_for_grading
from vision.quality import SHOPPER, QualityThresholds, assess_quality

# Names scanned per set; about half are held out. Sized for >= 40 held-out photos of each
# kind (the clean generated photos together, each degradation, the cut-offs, the car
# photos) in about a minute of CPU: the browser set's 2048 px renders are the slow ones
# (~3 s each), so it gets a few, and the record has 60+ of every set.
PER_SET = 30  # -> 11 render, 16 studio, 13 hand held-out photos
BROWSER = 6  # -> 4 held-out
CUT_OFFS = 100  # -> 45 held-out
CARS = 100  # -> 41 held-out car-damage photos

TARGET = {"clean": 0.95, "car_blur_exposure": 0.95, "car_glare": 0.90, "stop": 0.95}
CLEAN_CHECKS = ("blur", "underexposed", "overexposed", "glare", "coverage", "cut_off")


class HeldOut:
    """Measured held-out photos, and the upload bytes of the generated ones (for the
    decode-scale test, which decodes the same bytes two ways)."""

    def __init__(self) -> None:
        self.uploads: list[tuple[str, bytes]] = []
        photos = self._keep(qp.clean_photos(PER_SET, CARS, held_out=True, browser=BROWSER))
        cut_offs = list(qp.cut_off_photos(CUT_OFFS, held_out=True))
        self.rows = fq.measure_uploads(photos, cut_offs)
        self.uploads += cut_offs

    def _keep(self, photos: Iterable[tuple[qp.Photo, bytes]]) -> Iterator[tuple[qp.Photo, bytes]]:
        for photo, data in photos:
            if photo.set != "car":
                self.uploads.append((photo.name, data))
            yield photo, data


@pytest.fixture(scope="module")
def held_out() -> HeldOut:
    return HeldOut()


def _rate(flags: list[bool]) -> float:
    return sum(flags) / max(len(flags), 1)


def test_fitted_defaults_are_the_scripts() -> None:
    """The defaults are what the committed record says the script fitted."""
    blob = json.loads((fq.RESULTS / "quality_fit.json").read_text())
    assert QualityThresholds.from_dict(blob["thresholds"]) == SHOPPER


def test_the_split_keeps_fitted_photos_out(held_out: HeldOut) -> None:
    assert held_out.rows and all(r.held_out for r in held_out.rows)
    assert all(qp.is_held_out(name) for name, _ in held_out.uploads)


def test_clean_generated_photos_pass(held_out: HeldOut) -> None:
    clean = [r for r in held_out.rows if r.check is None and r.whole_item]
    ok = {r.name: all(fq.passes(r.m, SHOPPER, c) for c in CLEAN_CHECKS) for r in clean}
    by_set = {
        s: f"{_rate([ok[r.name] for r in clean if r.set == s]):.0%} "
        f"(n={sum(r.set == s for r in clean)})"
        for s in sorted({r.set for r in clean})
    }
    overall = _rate(list(ok.values()))
    failed = sorted(name for name, passed in ok.items() if not passed)
    print(f"\nheld-out clean photos passing every check: {overall:.1%} (n={len(clean)}); {by_set}")
    assert len(clean) >= 40, len(clean)
    assert overall >= TARGET["clean"], (
        f"clean pass {overall:.1%} < target {TARGET['clean']:.0%}; failed {failed}"
    )


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("gaussian", "blur"),
        ("motion", "blur"),
        ("dark", "underexposed"),
        ("burnt", "overexposed"),
        ("glare", "glare"),
        ("cut_off", "cut_off"),
    ],
)
def test_bad_photos_are_stopped(held_out: HeldOut, kind: str, check: str) -> None:
    rows = [r for r in held_out.rows if r.kind == kind]
    rate = _rate([not fq.passes(r.m, SHOPPER, check) for r in rows])
    missed = sorted(r.name for r in rows if fq.passes(r.m, SHOPPER, check))
    print(f"\nheld-out {kind}: stopped by {check} {rate:.1%} (n={len(rows)})")
    assert len(rows) >= 40, (kind, len(rows))
    assert rate >= TARGET["stop"], (
        f"{kind} stopped {rate:.1%} < target {TARGET['stop']:.0%}; missed {missed}"
    )


def test_real_car_photos_pass_photometric_checks(held_out: HeldOut) -> None:
    if not qp.CAR_DATASET.is_dir():
        pytest.skip(f"real photos not available: {qp.CAR_DATASET} is missing")
    cars = [r for r in held_out.rows if r.set == "car" and r.check is None]
    rates = {
        c: _rate([fq.passes(r.m, SHOPPER, c) for r in cars])
        for c in ("blur", "underexposed", "overexposed", "glare")
    }
    print(
        f"\nheld-out car-damage photos (n={len(cars)}): "
        + ", ".join(f"{c} {v:.1%}" for c, v in rates.items())
    )
    assert len(cars) >= 40, len(cars)
    for check in ("blur", "underexposed", "overexposed"):
        assert rates[check] >= TARGET["car_blur_exposure"], (check, rates)
    assert rates["glare"] >= TARGET["car_glare"], rates


def test_white_backdrop_is_not_glare() -> None:
    """Products on a clipped white studio sweep: the backdrop is neither glare nor
    overexposure (a white item may still clip on its own)."""
    failed = []
    for j in range(1000, 1006):
        backdrop = qp.studio_backdrop(1024, qp.np.random.default_rng(j))
        rgb, _ = qp._render(j, 1024, background=backdrop, bad=None)
        report = assess_quality(decode_image(qp.jpeg(rgb)))
        failed.append({c.name for c in report.failures} & {"glare", "overexposed"})
    print(f"\nstudio photos failing glare/overexposed: {failed}")
    assert not any("glare" in f for f in failed), failed
    assert sum(bool(f) for f in failed) <= 1, failed


def test_hand_held_item_is_not_cut_off() -> None:
    rgb, _ = qp._render(2001, 1024, background=None, bad=None)
    rgb, _ = qp.add_hand(rgb, 2001)
    report = assess_quality(decode_image(qp.jpeg(rgb)))
    assert "cut_off" not in {c.name for c in report.failures}, report.to_dict()


def test_verdict_does_not_depend_on_decode_scale(held_out: HeldOut) -> None:
    """Full decode and serving's DCT-downscaled decode agree on every check, on every
    other held-out generated photo of 1024 px or more (clean and cut off, ~30)."""
    big = [(name, data) for name, data in held_out.uploads if int(name.split("-")[1]) >= 1024]
    flips = []
    for name, data in big[::2]:
        full = decode_image(data, target_long_side=None)
        dct = decode_for_grading(data, input_size=0)
        assert dct.width < full.width  # really decoded smaller
        a = {c.name: (c.passed, round(c.value, 4)) for c in assess_quality(full).checks}
        b = {c.name: (c.passed, round(c.value, 4)) for c in assess_quality(dct).checks}
        if {k: v[0] for k, v in a.items()} != {k: v[0] for k, v in b.items()}:
            flips.append((name, {k: (a[k], b[k]) for k in a if a[k][0] != b[k][0]}))
    print(f"\ndecode-scale flips: {len(flips)} of {len(big[::2])}")
    assert len(big[::2]) >= 20, len(big)
    assert not flips, flips
