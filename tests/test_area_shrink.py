"""``area_shrink``: OpenCV's INTER_AREA shrink, pixel for pixel, on cheaper paths.

The model's input and the quality gate's working copy are made with it, so a changed
pixel would change grades and verdicts; the comparison is with OpenCV itself."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vision import area
from vision.area import FLOAT_COPY_MAX, area_shrink, row_period
from vision.preprocess import PreprocessSpec, preprocess
from vision.quality_mask import working_copy


def _image(rng: np.random.Generator, h: int, w: int, channels: int, noise: float) -> np.ndarray:
    base = cv2.resize(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), (w, h))
    img = np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
    return img if channels == 3 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def test_same_pixels_as_opencv_at_random_sizes_and_scales() -> None:
    rng = np.random.default_rng(20261204)
    for case in range(120):
        h, w = (int(v) for v in rng.integers(40, 700, 2))
        img = _image(rng, h, w, (1, 3)[case % 2], float(rng.choice([0.0, 3.0, 30.0])))
        assert 4 * img.size <= FLOAT_COPY_MAX  # every case takes a float path
        if case % 10 == 0:
            img[:] = 255  # saturated: rounding must not wrap
        size = (int(rng.integers(1, w + 1)), int(rng.integers(1, h + 1)))
        expected = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        got = area_shrink(img, size)
        assert got.dtype == np.uint8 and got.shape == expected.shape
        assert np.array_equal(got, expected), (img.shape, size)


@pytest.mark.parametrize("shape", [(600, 800), (756, 1008), (3024, 4032)])
def test_the_service_sizes(shape: tuple[int, int]) -> None:
    """The bench's decodes (1600 px and 12 MP photos) to the model's 224 px input and
    other sides, and an integer scale: OpenCV's own path (the 12 MP sizes, over
    ``FLOAT_COPY_MAX``, and the integer scale) gives the same pixels too."""
    img = _image(np.random.default_rng(shape[0]), *shape, 3, 12.0)
    for long_side in (512, 224, 128, shape[1] // 4):
        s = long_side / max(shape)
        size = (round(shape[1] * s), round(shape[0] * s))
        assert np.array_equal(
            area_shrink(img, size), cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        )


def test_model_input_is_opencvs_area_resize() -> None:
    img = _image(np.random.default_rng(7), 600, 800, 3, 12.0)
    spec = PreprocessSpec(input_size=224, resize_mode="letterbox", interpolation="area")
    out = preprocess(img, spec)
    expected = cv2.resize(img, (224, 168), interpolation=cv2.INTER_AREA)
    assert np.array_equal(out[28 : 28 + 168], expected)


def test_strips_give_the_same_pixels_at_random_dyadic_scales() -> None:
    """Vertical scales p / 2^j (the strip path), random widths and horizontal scales,
    images wider and taller than one strip, the last strip short."""
    rng = np.random.default_rng(20261205)
    for case in range(60):
        q = 2 ** int(rng.integers(0, 6))
        p = q + int(rng.integers(1, 4 * q))
        m = int(rng.integers(1, max(2, 900 // p)))
        h, w = p * m, int(rng.integers(40, 1400))
        img = _image(rng, h, w, (1, 3)[case % 2], float(rng.choice([0.0, 3.0, 30.0])))
        size = (int(rng.integers(1, w + 1)), q * m)
        assert row_period(h, size[1]) is not None
        expected = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        assert np.array_equal(area_shrink(img, size), expected), (img.shape, size)


def test_strips_are_used_for_the_gate_and_12mp_model_sizes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shapes every upload pays for take the strip path (its float copy at most a
    strip, never the whole photo's), and give OpenCV's pixels."""
    strips: list[int] = []
    real = area._in_strips

    def counting(image: np.ndarray, size: tuple[int, int], period: tuple[int, int]) -> np.ndarray:
        strips.append(period[0])
        return real(image, size, period)

    monkeypatch.setattr(area, "_in_strips", counting)
    cases = [((600, 800), (512, 384)), ((756, 1008), (512, 384)), ((756, 1008), (224, 168))]
    cases += [((540, 960), (512, 288)), ((3024, 4032), (512, 384))]
    for (h, w), size in cases:
        img = _image(np.random.default_rng(h), h, w, 3, 12.0)
        expected = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        assert np.array_equal(area_shrink(img, size), expected), (img.shape, size)
    assert len(strips) == len(cases)
    assert row_period(600, 168) is None  # 800 x 600 to the model's 224: the whole copy


def test_not_dyadic_scales_have_no_period() -> None:
    assert row_period(600, 384) == (25, 16)
    assert row_period(756, 168) == (9, 2)
    assert row_period(600, 168) is None  # 25 / 7
    assert row_period(341, 85) is None
    assert row_period(480, 480) == (1, 1)


def test_gate_working_copy_is_opencvs_area_resize() -> None:
    for shape in [(600, 800), (756, 1008), (533, 800), (800, 600)]:
        img = _image(np.random.default_rng(shape[1]), *shape, 3, 20.0)
        s = 512 / max(shape)
        size = (round(shape[1] * s), round(shape[0] * s))
        expected = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        assert np.array_equal(working_copy(img, 512), expected), shape


def test_a_long_period_on_a_large_image_takes_no_large_float_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1023 rows to 512 is dyadic but one period is the whole image: over
    ``FLOAT_COPY_MAX`` as float32, so neither the strips nor the whole copy are used."""
    floats: list[int] = []
    real_resize = cv2.resize

    def resize(src: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        if src.dtype == np.float32:
            floats.append(src.nbytes)
        return real_resize(src, *args, **kwargs)  # type: ignore[arg-type]

    img = _image(np.random.default_rng(1023), 1023, 1600, 3, 12.0)
    assert row_period(1023, 512) == (1023, 512)
    assert 4 * img.size > FLOAT_COPY_MAX
    expected = cv2.resize(img, (801, 512), interpolation=cv2.INTER_AREA)
    monkeypatch.setattr(area.cv2, "resize", resize)
    assert np.array_equal(area_shrink(img, (801, 512)), expected)
    assert floats == []
