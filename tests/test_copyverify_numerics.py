"""The dense check's order statistics (``vision/orderstats.py``) against numpy's, which
they replace for speed: the same values of the same types, so every score is unchanged."""

from __future__ import annotations

import warnings

import numpy as np

from vision import orderstats


def _samples(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    out = []
    for k in range(count):
        x = (rng.random(int(rng.integers(1, 5000))) * rng.choice([1.0, 30.0, 255.0])).astype(
            np.float32
        )
        out.append(np.round(x) if k % 3 == 0 else x)  # ties, and none
    return out


def test_percentiles_and_median_are_numpys() -> None:
    rng = np.random.default_rng(5)
    for x in _samples(rng, 600):
        for qs in ((10, 90), (60,), (0, 100)):
            expected = np.percentile(x, qs)
            got = orderstats.percentiles(x, qs)
            assert [type(v) for v in got] == [np.float64] * len(qs)  # as numpy's: compares
            assert got == list(expected)  # against a float32 array in float64
        want = np.median(x)
        have = orderstats.median(x)
        assert type(have) is type(want) and have == want


def test_row_nanmedian_is_numpys() -> None:
    rng = np.random.default_rng(3)
    for trial in range(300):
        x = (rng.random((int(rng.integers(1, 120)), 64)) * 255).astype(np.float32)
        if trial % 2:
            x = np.round(x)  # ties
        x[rng.random(x.shape) < rng.random()] = np.nan
        x[0] = np.nan  # a row with nothing in it
        with warnings.catch_warnings():  # numpy warns of the all-NaN row
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.nanmedian(x, axis=1)
        got = orderstats.row_nanmedian(x)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)


def test_line_fit_is_polyfits_line() -> None:
    """The dense check's closed-form line (``copyverify._line``) is ``np.polyfit``'s
    degree-1 fit, to float rounding: grey levels of the kept pixels, gains 0.5-2."""
    from vision.copyverify import _line

    rng = np.random.default_rng(11)
    for _ in range(300):
        n = int(rng.integers(17, 5000))
        x = (rng.random(n) * rng.choice([30.0, 255.0])).astype(np.float32)
        y = (x * rng.uniform(0.5, 2.0) + rng.uniform(-40, 40) + rng.normal(0, 3, n)).astype(
            np.float32
        )
        want_gain, want_offset = np.polyfit(x, y, 1)
        gain, offset = _line(x, y)
        assert abs(gain - want_gain) <= 1e-5 * abs(want_gain)
        assert abs(offset - want_offset) <= 1e-3
