"""The photo-quality gate, validated on generated degradations of clean photos.

Clean photos: procedurally drawn items on a table (box, plain untextured box, mug, phone,
book with a real photo as its cover; plain, wood and fabric tables) and real scikit-image
photos (coffee, chelsea, astronaut, rocket) upscaled to a phone-like 1200 px. Every photo
goes through the real path: JPEG bytes -> decode_image -> assess_quality.

Degradations a shopper must retake (each must fail with the named check), strengths in
pixels of the 1200 x 900 frame:

- blur: Gaussian sigma 3, 5, 8; motion blur 20, 30, 45 px (stated for a 640 px frame,
  scaled by 1200/640 here, as in benchmarks/fit_quality.py) at a different angle per photo;
- underexposed: -3 and -4 EV (issue 14: -3 EV must be stopped);
- overexposed: exposure raised until half of the item is blown to white (a real photo:
  half the frame), as in benchmarks/quality_photos.py: "half the frame" would leave a
  dark phone on a light table untouched, a photo the gate rightly passes;
- glare: a saturated specular blob of radius 12% of the short side on the item;
- resolution: downscaled to 320 x 240;
- coverage: the item drawn at 20% of the frame height;
- cut_off: a crop through the item so that it runs off the edges.

Mild versions a person may accept (Gaussian sigma 1.5, 9 px motion, -1 EV,
+1 EV, a 5% glare spot, the item at 35% of the frame height) are reported, and bounded:
no mild version is refused on every photo, and the gentlest two pass on most photos.
The seeds here differ from the ones the thresholds were tuned on.
Run with ``pytest -s`` to see the rates.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from benchmarks.quality_photos import burn_out
from tests import photo_factory as pf
from vision.decode import decode_image
from vision.errors import ConfigError
from vision.quality import (
    DOCK,
    PROFILES,
    SHOPPER,
    QualityThresholds,
    assess_quality,
    item_mask,
    sharpness,
    working_copy,
)
from vision.types import QualityReport

CHECKS = ("blur", "underexposed", "overexposed", "glare", "resolution", "coverage", "cut_off")

# (kind, background, seed): every kind, every table; the flat box on a plain table is the
# hardest case for the blur check (only its outline has edges).
ITEM_SCENES = (
    ("box", "plain", 101),
    ("plainbox", "plain", 102),
    ("mug", "wood", 103),
    ("phone", "fabric", 104),
    ("book", "plain", 105),
    ("plainbox", "wood", 108),
)
REAL_PHOTOS = ("coffee", "chelsea", "astronaut", "rocket")
PHOTOMETRIC = ("blur", "underexposed", "overexposed", "glare", "resolution")


@dataclass(frozen=True)
class Clean:
    name: str
    rgb: np.ndarray
    scene: pf.Scene | None  # None for real photos (no item mask, no re-rendering)
    index: int


Degrade = Callable[[Clean], np.ndarray | None]


def _glare(radius: float) -> Degrade:
    def apply(c: Clean) -> np.ndarray:
        centre = pf.item_centre(c.scene.mask) if c.scene is not None else (0.5, 0.5)
        return pf.add_glare(c.rgb, centre, radius)

    return apply


def _burn(c: Clean) -> np.ndarray | None:
    item = c.scene.mask > 0 if c.scene is not None else None
    return burn_out(c.rgb, item)


def _rerender(fraction: float) -> Degrade:
    def apply(c: Clean) -> np.ndarray | None:
        if c.scene is None:
            return None
        kind, background, seed = ITEM_SCENES[c.index]
        return pf.item_scene(seed, kind=kind, background=background, item_fraction=fraction).rgb

    return apply


# Strengths of blur are stated for a 640 px frame (benchmarks/fit_quality.py) and scaled
# to this 1200 px frame: the gate judges blur as a share of the frame.
REF = 1200 / 640


def _motion(length: int) -> Degrade:
    n = round(length * REF)
    return lambda c: pf.motion_blur(c.rgb, n, angle_deg=(17 + 41 * c.index) % 180)


MUST_FAIL: dict[str, tuple[str, Degrade]] = {
    "gaussian sigma 3": ("blur", lambda c: pf.gaussian_blur(c.rgb, 3 * REF)),
    "gaussian sigma 5": ("blur", lambda c: pf.gaussian_blur(c.rgb, 5 * REF)),
    "gaussian sigma 8": ("blur", lambda c: pf.gaussian_blur(c.rgb, 8 * REF)),
    "motion 20 px": ("blur", _motion(20)),
    "motion 30 px": ("blur", _motion(30)),
    "motion 45 px": ("blur", _motion(45)),
    "dark -3 EV": ("underexposed", lambda c: pf.exposure(c.rgb, 1 / 8)),  # issue 14
    "dark -4 EV": ("underexposed", lambda c: pf.exposure(c.rgb, 1 / 16)),
    "burnt out": ("overexposed", lambda c: _burn(c)),
    "glare r=12%": ("glare", _glare(0.12)),
    "tiny 320x240": ("resolution", lambda c: pf.downscale(c.rgb, 320)),
    "item at 20%": ("coverage", _rerender(0.2)),
    "cut through item": ("cut_off", lambda c: pf.crop_through_item(c.scene) if c.scene else None),
}
MILD: dict[str, tuple[str, Degrade]] = {
    "gaussian sigma 1.5": ("blur", lambda c: pf.gaussian_blur(c.rgb, 1.5)),
    "motion 9 px": ("blur", lambda c: pf.motion_blur(c.rgb, 9, angle_deg=17)),
    "dark -1 EV": ("underexposed", lambda c: pf.exposure(c.rgb, 0.5)),
    "bright +1 EV": ("overexposed", lambda c: pf.exposure(c.rgb, 2.0)),
    "glare r=5%": ("glare", _glare(0.05)),
    "item at 35%": ("coverage", _rerender(0.35)),
}


def _assess(rgb: np.ndarray, profile: str = "shopper") -> QualityReport:
    return assess_quality(decode_image(pf.encode(rgb, "JPEG", quality=90)), profile=profile)


@pytest.fixture(scope="module")
def cleans() -> list[Clean]:
    out = []
    for i, (kind, background, seed) in enumerate(ITEM_SCENES):
        scene = pf.item_scene(seed, kind=kind, background=background)
        out.append(Clean(f"{kind}/{background}", scene.rgb, scene, i))
    for j, name in enumerate(REAL_PHOTOS):
        out.append(Clean(name, pf.real_scene(name), None, len(ITEM_SCENES) + j))
    return out


@pytest.fixture(scope="module")
def clean_reports(cleans: list[Clean]) -> dict[str, QualityReport]:
    return {c.name: _assess(c.rgb) for c in cleans}


def _failed(report: QualityReport) -> set[str]:
    return {c.name for c in report.failures}


def _run(
    cleans: list[Clean],
    table: dict[str, tuple[str, Degrade]],
    clean_reports: dict[str, QualityReport],
) -> dict[str, list[tuple[str, set[str]]]]:
    """label -> [(photo, checks that fail on the degraded photo but not on the clean one)]"""
    results: dict[str, list[tuple[str, set[str]]]] = {}
    for label, (_, degrade) in table.items():
        for c in cleans:
            rgb = degrade(c)
            if rgb is not None:
                new = _failed(_assess(rgb)) - _failed(clean_reports[c.name])
                results.setdefault(label, []).append((c.name, new))
    return results


def test_clean_photos_pass(cleans: list[Clean], clean_reports: dict[str, QualityReport]) -> None:
    print("\nclean photos (shopper profile):")
    for c in cleans:
        r = clean_reports[c.name]
        values = " ".join(f"{k.name}={k.value:.3g}" for k in r.checks)
        print(f"  {c.name:16s} {'PASS' if r.passed else 'FAIL ' + ','.join(_failed(r))}  {values}")
    items = [c for c in cleans if c.scene is not None]
    reals = [c for c in cleans if c.scene is None]
    item_pass = sum(clean_reports[c.name].passed for c in items)
    real_pass = sum(not (_failed(clean_reports[c.name]) & set(PHOTOMETRIC)) for c in reals)
    print(f"clean item photos passing every check: {item_pass}/{len(items)}")
    print(f"clean real photos passing {'/'.join(PHOTOMETRIC)}: {real_pass}/{len(reals)}")
    for c in items:
        assert clean_reports[c.name].passed, (c.name, clean_reports[c.name].to_dict())
    # Raw scikit-image scenes are not framed as item photos (the coffee saucer and the
    # astronaut run off the frame), so only the photometric checks must pass on them.
    # "rocket" is a dim launch-pad scene: its 90th-percentile luma sits below the re-fitted
    # exposure floor (set so that -3 EV photos are stopped), a known cost of that target.
    for c in reals:
        allowed = {"underexposed"} if c.name == "rocket" else set()
        assert not (_failed(clean_reports[c.name]) & set(PHOTOMETRIC)) - allowed, c.name


@pytest.mark.slow
def test_degraded_photos_fail_with_the_right_check(
    cleans: list[Clean], clean_reports: dict[str, QualityReport]
) -> None:
    strong = _run(cleans, MUST_FAIL, clean_reports)
    mild = _run(cleans, MILD, clean_reports)
    print("\ndegradation          expected       flagged (right check)  any new failure")
    for table, results, tag in ((MUST_FAIL, strong, "must fail"), (MILD, mild, "mild")):
        for label, rows in results.items():
            expected = table[label][0]
            right = sum(expected in failed for _, failed in rows)
            anyf = sum(bool(failed) for _, failed in rows)
            print(
                f"  {label:20s} {expected:13s} {right:3d}/{len(rows):<3d} "
                f"({100 * right / len(rows):5.1f}%)        {anyf}/{len(rows)}   [{tag}]"
            )
    already = {name for name, r in clean_reports.items() if not r.passed}
    misses = [
        (label, name, sorted(failed))
        for label, rows in strong.items()
        for name, failed in rows
        if MUST_FAIL[label][0] not in failed and name not in already
    ]
    assert not misses, misses
    # The mild versions sit between clean and must-fail: the named check may refuse
    # some, never all (a threshold that tight refuses photos a person would accept), and
    # the gentlest two pass on at least 7 photos in 10.
    flagged = {
        label: sum(MILD[label][0] in failed for _, failed in rows) for label, rows in mild.items()
    }
    assert set(flagged) == set(MILD)  # every mild version ran on some photo
    for label, rows in mild.items():
        assert flagged[label] < len(rows), (label, rows)
    for label in ("gaussian sigma 1.5", "dark -1 EV"):
        assert flagged[label] <= 0.3 * len(mild[label]), (label, mild[label])


def test_flat_box_is_not_called_blurry(clean_reports: dict[str, QualityReport]) -> None:
    """A box with no print or texture: its outline alone must read as sharp."""
    for name in ("plainbox/plain", "plainbox/wood"):
        blur = next(c for c in clean_reports[name].checks if c.name == "blur")
        assert blur.passed and blur.value >= SHOPPER.min_sharpness + 0.015, blur


def test_same_verdict_full_dct_and_browser_downscale() -> None:
    """12 MP-class photo: full decode, DCT decode at 512 and a 1600 px browser downscale
    give the same pass/fail on every check and nearly the same measurements."""
    big = pf.item_scene(211, kind="mug", background="fabric", size=(2400, 1800))
    variants = {
        "clean": big.rgb,
        "blurred": pf.gaussian_blur(big.rgb, 8),
        "dark": pf.exposure(big.rgb, 1 / 16),
        "glare": pf.add_glare(big.rgb, pf.item_centre(big.mask), 0.12),
    }
    for label, rgb in variants.items():
        data = pf.encode(rgb, "JPEG", quality=92)
        browser = pf.encode(pf.downscale(rgb, 1600), "JPEG", quality=92)
        full = decode_image(data, target_long_side=None)
        dct = decode_image(data, target_long_side=512)
        assert dct.width < full.width // 2  # really decoded smaller
        reports = [assess_quality(p) for p in (full, dct, decode_image(browser))]
        verdicts = [{c.name: c.passed for c in r.checks} for r in reports]
        assert verdicts[0] == verdicts[1] == verdicts[2], (label, verdicts)
        values = [{c.name: c.value for c in r.checks} for r in reports]
        for v in values[1:]:
            assert abs(v["blur"] - values[0]["blur"]) < 0.05, (label, values)
            assert abs(v["underexposed"] - values[0]["underexposed"]) < 4, (label, values)
            assert abs(v["coverage"] - values[0]["coverage"]) < 0.02, (label, values)
        assert values[0]["resolution"] == values[1]["resolution"] == 1800  # the upload's size
    assert not reports[0].passed  # the last one (glare) is refused


def test_item_mask_matches_ground_truth() -> None:
    ious = []
    for i, (kind, background) in enumerate(
        [("box", "wood"), ("phone", "plain"), ("mug", "fabric"), ("book", "wood")]
    ):
        scene = pf.item_scene(300 + i, kind=kind, background=background)
        mask = item_mask(working_copy(scene.rgb))
        truth = cv2.resize(
            scene.mask, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST
        )
        ious.append((mask & truth).sum() / (mask | truth).sum())
    print(f"\nitem mask IoU vs drawn ground truth: {[round(float(v), 2) for v in ious]}")
    assert min(ious) > 0.7


def test_sharpness_is_monotonic_in_blur() -> None:
    rgb = pf.item_scene(401, kind="book").rgb
    values = [sharpness(pf.gaussian_blur(rgb, s) if s else rgb) for s in (0, 2, 4, 8)]
    assert values == sorted(values, reverse=True)


def test_report_shape_and_messages(
    cleans: list[Clean], clean_reports: dict[str, QualityReport]
) -> None:
    report = _assess(pf.exposure(pf.downscale(pf.item_scene(5).rgb, 320), 1 / 16))
    assert [c.name for c in report.checks] == list(CHECKS)
    assert {"resolution", "underexposed"} <= _failed(report)
    for c in report.checks:
        assert c.direction in ("min", "max")
        assert bool(c.message) is (not c.passed)
        ok = c.value >= c.threshold if c.direction == "min" else c.value <= c.threshold
        assert ok is c.passed
    res = next(c for c in report.checks if c.name == "resolution")
    assert "320 x 240" in res.message and "640 x 480" in res.message
    blob = json.loads(json.dumps(report.to_dict()))
    assert blob["passed"] is False and blob["profile"] == "shopper"
    clean = clean_reports["box/plain"]
    assert clean.passed and all(c.message == "" for c in clean.checks)  # passing: silent
    # every check, when it fails, has its own sentence: what is wrong, then what to do
    item = next(c for c in cleans if c.name == "box/plain")
    # the first (mildest) must-fail version of each check
    degrade_for = {check: degrade for check, degrade in reversed(MUST_FAIL.values())}
    sentences = {}
    for name in CHECKS:
        degraded = degrade_for[name](item)
        assert degraded is not None, name
        sentences[name] = next(c.message for c in _assess(degraded).failures if c.name == name)
    for name, msg in sentences.items():
        assert msg[0].isupper() and msg.endswith(".") and ". " in msg, (name, msg)
    assert len(set(sentences.values())) == len(CHECKS)  # no generic sentence shared


def test_failure_sentences_are_actionable(cleans: list[Clean]) -> None:
    c = cleans[0]
    blurred = _assess(pf.gaussian_blur(c.rgb, 8))
    msg = next(k.message for k in blurred.failures if k.name == "blur")
    assert "steady" in msg and "focus" in msg
    small = _assess(MUST_FAIL["item at 20%"][1](c))  # type: ignore[arg-type]
    assert "Move closer" in next(k.message for k in small.failures if k.name == "coverage")


def test_dock_profile_is_looser(cleans: list[Clean]) -> None:
    for field, value in SHOPPER.to_dict().items():
        dock = DOCK.to_dict()[field]
        assert dock <= value if field.startswith("min") else dock >= value, field
    mild = pf.gaussian_blur(cleans[0].rgb, 3 * REF)  # soft, still gradeable on a fixed station
    assert "blur" in _failed(_assess(mild, "shopper"))
    assert "blur" not in _failed(_assess(mild, "dock"))
    assert assess_quality(decode_image(pf.encode(cleans[0].rgb)), profile="dock").profile == "dock"


def test_thresholds_round_trip_and_validation() -> None:
    assert QualityThresholds.from_dict(SHOPPER.to_dict()) == SHOPPER
    assert QualityThresholds.from_dict(json.loads(json.dumps(DOCK.to_dict()))) == DOCK
    custom = QualityThresholds.from_dict({"min_sharpness": 0.2}, base=DOCK)
    assert custom.min_sharpness == 0.2 and custom.min_coverage == DOCK.min_coverage
    assert set(PROFILES) == {"shopper", "dock"}
    with pytest.raises(ConfigError, match="unknown quality threshold"):
        QualityThresholds.from_dict({"min_sharpnes": 0.2})
    with pytest.raises(ConfigError):
        QualityThresholds.from_dict({"min_coverage": -1})
    with pytest.raises(ConfigError):
        QualityThresholds.from_dict({"min_coverage": "high"})
    with pytest.raises(ConfigError):
        QualityThresholds.from_dict(["min_coverage"])  # type: ignore[arg-type]


def test_unknown_profile() -> None:
    photo = decode_image(pf.encode(pf.asymmetric_pattern()))
    with pytest.raises(ConfigError, match="unknown quality profile"):
        assess_quality(photo, profile="warehouse")


def test_degenerate_photos_do_not_crash() -> None:
    for rgb in (
        np.zeros((1, 1, 3), np.uint8),
        np.full((600, 800, 3), 255, np.uint8),
        np.zeros((900, 1200, 3), np.uint8),
        np.zeros((2, 3000, 3), np.uint8),
    ):
        report = _assess(rgb)
        assert not report.passed
        assert all(np.isfinite(c.value) for c in report.checks)
