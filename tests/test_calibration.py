"""Temperature scaling is kept only where it lowers validation ECE (synthetic logits).

Each case builds logits and labels whose calibration is known by construction, so the
keep-or-refuse decision is not a matter of luck: an overconfident model (scaling helps),
a model whose wrong answers sit on classes it ruled out (the NLL-optimal T flattens
every confidence and ECE gets worse), a split too small to calibrate on, and a split
the network grades perfectly (the fit runs to its bound).
"""

from __future__ import annotations

import numpy as np
import pytest

from training.calibrate import (
    MIN_CALIBRATION_PHOTOS,
    T_MIN,
    choose_temperature,
    cross_validated_probs,
    fit_temperature,
)
from training.metrics import expected_calibration_error, softmax


def overconfident(n: int, sharpen: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(true logits); the model reports true logits * sharpen."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.0, 1.5, size=(n, 5))
    p = softmax(true)
    labels = np.array([rng.choice(5, p=row) for row in p])
    return true * sharpen, labels


def wrong_on_ruled_out_classes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence 0.953 and right 95% of the time (ECE near 0), but each wrong
    answer's true class got probability 1e-5, so the NLL wants a large T."""
    rng = np.random.default_rng(seed)
    logits = np.array([[3.0, 0.0, -8.0]] * n)
    for row in logits:
        rng.shuffle(row)
    top, bottom = logits.argmax(axis=1), logits.argmin(axis=1)
    labels = np.where(np.arange(n) % 20 == 0, bottom, top)
    return logits, labels


def test_scaling_is_kept_when_it_lowers_ece() -> None:
    z, y = overconfident(600, sharpen=4.0)
    choice = choose_temperature(z, y)
    assert choice.kept == "scaled"
    assert 2.5 < choice.temperature < 6.0 and choice.temperature == round(choice.fitted or 0, 6)
    assert choice.ece_after is not None and choice.ece_after < choice.ece_before / 2
    assert choice.sentence.startswith("Temperature scaling kept: T = ")
    assert f"{choice.ece_before:.3f} to {choice.ece_after:.3f}" in choice.sentence
    card = choice.card_dict()
    assert card["kept"] == "scaled" and card["val_photos"] == 600
    assert card["temperature"] == choice.temperature
    assert card["min_val_photos"] == MIN_CALIBRATION_PHOTOS


def test_scaling_that_raises_ece_is_refused() -> None:
    z, y = wrong_on_ruled_out_classes(400)
    fitted = fit_temperature(z, y)
    assert fitted > 1.5  # the NLL really does ask for flatter confidences
    assert expected_calibration_error(softmax(z / fitted), y) > expected_calibration_error(
        softmax(z), y
    )
    choice = choose_temperature(z, y)
    assert choice.kept == "unscaled" and choice.temperature == 1.0
    assert choice.fitted == pytest.approx(fitted)
    assert choice.ece_after is not None and choice.ece_after > choice.ece_before
    assert choice.sentence.startswith("Temperature scaling refused: T = ")
    assert "would raise validation ECE" in choice.sentence
    assert choice.sentence.endswith("so the model keeps T = 1.")


def test_too_small_a_split_keeps_t_1_without_fitting() -> None:
    z, y = overconfident(MIN_CALIBRATION_PHOTOS - 1, sharpen=4.0)
    choice = choose_temperature(z, y)
    assert choice.kept == "unscaled" and choice.temperature == 1.0
    assert choice.fitted is None and choice.ece_after is None
    assert choice.sentence.startswith(
        f"Temperature scaling skipped: the validation split has {MIN_CALIBRATION_PHOTOS - 1} "
        f"graded photos and calibration needs at least {MIN_CALIBRATION_PHOTOS}"
    )
    assert choice.card_dict()["ece_after"] is None


def test_degenerate_fit_on_a_perfectly_graded_split_is_refused() -> None:
    """Every photo right: the NLL keeps falling as T shrinks and the fit hits 0.05, the
    collapse seen on a 35-76 photo retraining run."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, size=76)
    z = rng.normal(0.0, 0.3, size=(76, 5))
    z[np.arange(76), y] += 1.0  # right every time, but with modest margins
    assert fit_temperature(z, y) == pytest.approx(T_MIN)
    choice = choose_temperature(z, y)
    assert choice.kept == "unscaled" and choice.temperature == 1.0
    assert "outside the plausible 0.1-10 (a degenerate fit" in choice.sentence


def test_cross_validated_probs_never_use_a_photos_own_label() -> None:
    """Out-of-fold: a photo's scaled probabilities do not change when only its own label
    changes (its T is fitted on the other folds)."""
    z, y = overconfident(200, sharpen=3.0, seed=1)
    flipped = y.copy()
    flipped[0] = (y[0] + 1) % 5
    a = cross_validated_probs(z, y)
    b = cross_validated_probs(z, flipped)
    np.testing.assert_allclose(a[0], b[0])
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
