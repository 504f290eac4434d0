"""The bundled sample photos (``datasets/samples/*.jpg``): photos of the demo's own SKUs.

    python -m serving.demo_samples [--out datasets/samples]

The demo (``serving/demo.py``) seeds its catalog from ``vision.synth.catalog_skus(7, 2)``
and prints, per order, which sample to upload and what will happen. Those promises only
hold when each sample shows the very SKU of its order (the wrong-item check compares the
photo with the SKU's catalog reference) in the condition its name says, so the samples
are rendered here from the same catalog, with the same generator.

Each photo is the first candidate (rng seeds ``[SAMPLE_SEED, n, attempt]``) whose quality
verdict is the intended one *with margin*: a clean sample passes every gate check at
least ``MARGIN`` inside its threshold, a bad sample fails the check it is meant to fail
(``blur``, ``underexposed``) and passes the others. A sample at the edge of a threshold
would flip with any re-fit of the gate and make the demo lie. Candidates are chosen by
the gate only, never by what the model says: whether the shipped model grades them as
the demo promises is checked by ``tests/test_demo_promises.py``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.decode import decode_image
from vision.fsio import atomic_write_bytes
from vision.quality import PROFILES, assess_quality
from vision.types import QualityCheck

SAMPLES_DIR = Path("datasets/samples")  # relative to the repository root
CATALOG_SEED = 7  # serving.settings.Settings.demo_seed's default
SKUS_PER_CATEGORY = 2  # serving.demo.seed_demo's default
SAMPLE_SEED = 7077
SIZE = 1024
JPEG_QUALITY = 90
MARGIN = 0.2  # a clean sample's every measurement is >= 20% inside its threshold
ATTEMPTS = 40
_INTENDED_FAILURE = {"blur": "blur", "dark": "underexposed"}


@dataclass(frozen=True)
class Sample:
    """One bundled photo: which demo SKU, in which condition, and what is wrong with it."""

    file: str
    sku: str
    grade: str
    bad: str | None = None  # a vision.synth BAD_KINDS member ("blur", "dark") or None


SAMPLES: tuple[Sample, ...] = (
    Sample("mug-01-A_new.jpg", "mug-01", "A_new"),
    Sample("shoe-01-B_like_new.jpg", "shoe-01", "B_like_new"),
    Sample("phone-01-B_like_new.jpg", "phone-01", "B_like_new"),
    Sample("book-01-C_good.jpg", "book-01", "C_good"),
    Sample("mug-01-E_damaged.jpg", "mug-01", "E_damaged"),
    Sample("garment-01-C_good-blur.jpg", "garment-01", "C_good", "blur"),
    Sample("box-01-D_fair-dark.jpg", "box-01", "D_fair", "dark"),
)


def _inside(check: QualityCheck) -> bool:
    """Passed, and at least MARGIN (relative) away from the threshold."""
    if not check.passed:
        return False
    if check.direction == "min":
        return check.value >= check.threshold * (1 + MARGIN)
    return check.value <= check.threshold * (1 - MARGIN)


def _acceptable(jpeg: bytes, bad: str | None) -> bool:
    report = assess_quality(decode_image(jpeg), PROFILES["shopper"], profile="shopper")
    if bad is None:
        return all(_inside(c) for c in report.checks)
    failed = {c.name for c in report.failures}
    return failed == {_INTENDED_FAILURE[bad]}


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise RuntimeError("OpenCV could not encode a sample photo")
    return buf.tobytes()


def render_sample(n: int, sample: Sample) -> bytes:
    """JPEG bytes of the first candidate whose gate verdict is the intended one."""
    from vision.synth import catalog_skus, render_photo, sample_state

    sku = next(s for s in catalog_skus(CATALOG_SEED, SKUS_PER_CATEGORY) if s.sku == sample.sku)
    for attempt in range(ATTEMPTS):
        rng = np.random.default_rng([SAMPLE_SEED, n, attempt])
        state = sample_state(sku, sample.grade, rng)
        rgb, _ = render_photo(sku, state, rng, SIZE, background="plain", bad=sample.bad)
        data = _jpeg(rgb)
        if _acceptable(data, sample.bad):
            return data
    raise RuntimeError(f"no candidate for {sample.file} passed the gate as intended")


def write_samples(out: Path) -> list[Path]:
    """Render every sample into ``out`` (replacing files of the same name)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for n, sample in enumerate(SAMPLES):
        path = out / sample.file
        atomic_write_bytes(path, render_sample(n, sample))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the bundled demo sample photos.")
    parser.add_argument("--out", type=Path, default=SAMPLES_DIR)
    args = parser.parse_args(argv)
    for path in write_samples(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
