"""The adapted model's unfamiliarity threshold holds its false-alarm rate on each kind of
validation photo (vision.unfamiliarity.group_threshold), not only on their mix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vision.manifest import ManifestRecord
from vision.unfamiliarity import (
    DEFAULT_TARGET_RATE,
    MIN_KIND,
    fit_threshold,
    group_threshold,
    photo_kinds,
)


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


def _record(i: int, folder: str) -> ManifestRecord:
    image = Path(f"/data/{folder}/images/{i}.jpg")
    return ManifestRecord(f"p{i}", image, "A_new", (), "mug", "mug-01", "val")


def test_photo_kinds_are_the_dataset_folders_and_tiny_ones_join_the_largest() -> None:
    n_shop, n_dock, n_odd = MIN_KIND + 10, MIN_KIND + 400, 7
    records = (
        [_record(i, "synth-wide") for i in range(n_shop)]
        + [_record(n_shop + i, "dock-crops") for i in range(n_dock)]
        + [_record(n_shop + n_dock + i, "odd") for i in range(n_odd)]
    )
    kinds = photo_kinds(records)
    assert [len(k) for k in kinds] == [n_dock + n_odd, n_shop]  # the tiny folder: no kind
    assert sorted(int(i) for k in kinds for i in k) == list(range(len(records)))
    assert {records[int(i)].image.parent.parent.name for i in kinds[1]} == {"synth-wide"}
    # one folder, or only tiny ones: a single kind, the plain fit
    assert len(photo_kinds(records[:50])) == 1
