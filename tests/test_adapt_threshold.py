"""The adapted model's unfamiliarity threshold holds its false-alarm rate on each kind of
validation photo (training/adapt_score.group_threshold), not only on their mix."""

from __future__ import annotations

import numpy as np

from training.adapt_score import group_threshold
from vision.unfamiliarity import DEFAULT_TARGET_RATE, fit_threshold


def test_a_large_easy_group_does_not_hide_the_other_groups_rate() -> None:
    rng = np.random.default_rng(5)
    dock = rng.normal(1.0, 0.05, 1400).astype(np.float32)  # many photos, all familiar-looking
    shop = rng.normal(1.3, 0.3, 500).astype(np.float32)  # fewer, spread out
    both = np.concatenate([dock, shop])
    mixed, _ = fit_threshold(both, DEFAULT_TARGET_RATE)
    shop_rate_mixed = float(np.mean(shop > np.float32(mixed)))
    threshold, rate = group_threshold([dock, shop], both)
    rates = [float(np.mean(g > np.float32(threshold))) for g in (dock, shop)]
    print(f"mix-fitted: shopper rate {shop_rate_mixed:.3f}; per group: {rates}, all {rate:.3f}")
    assert shop_rate_mixed > DEFAULT_TARGET_RATE  # the failure the rule exists for
    assert all(r <= DEFAULT_TARGET_RATE for r in rates)
    assert rate <= DEFAULT_TARGET_RATE
    # the lowest such threshold: a hair lower breaks the target on some group
    lower = np.nextafter(np.float32(threshold), np.float32(0))
    assert max(float(np.mean(g > lower)) for g in (dock, shop)) > DEFAULT_TARGET_RATE


def test_one_group_is_the_plain_fit() -> None:
    scores = np.random.default_rng(6).gamma(4.0, 0.3, 800).astype(np.float32)
    assert group_threshold([scores], scores) == fit_threshold(scores, DEFAULT_TARGET_RATE)
