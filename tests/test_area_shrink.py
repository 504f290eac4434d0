"""``area_shrink``: OpenCV's INTER_AREA shrink, pixel for pixel, on a cheaper path.

The model's input is made with it, so a changed pixel would change grades; the
comparison is with OpenCV itself."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vision.preprocess import FLOAT_COPY_MAX, PreprocessSpec, area_shrink, preprocess


def _image(rng: np.random.Generator, h: int, w: int, channels: int, noise: float) -> np.ndarray:
    base = cv2.resize(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), (w, h))
    img = np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
    return img if channels == 3 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def test_same_pixels_as_opencv_at_random_sizes_and_scales() -> None:
    rng = np.random.default_rng(20261204)
    for case in range(120):
        h, w = (int(v) for v in rng.integers(40, 700, 2))
        img = _image(rng, h, w, (1, 3)[case % 2], float(rng.choice([0.0, 3.0, 30.0])))
        assert 4 * img.size <= FLOAT_COPY_MAX  # every case takes the float path
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
