"""copyframe's padding mask and content box against OpenCV's per-component statistics.

``padding_mask`` and ``content_box`` take areas and boxes from the label image in numpy
(``connectedComponentsWithStats`` costs three times the labelling); the statistics route
(the box as first written, and the labels and areas OpenCV's statistics give) must give
the same answer on frames with borders, rotation fill, screenshot bars, specks and no
padding at all."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vision import copyframe


def _reference_box(padding: np.ndarray) -> tuple[int, int, int, int] | None:
    n, _, stats, _ = cv2.connectedComponentsWithStats((~padding).astype(np.uint8), 8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = stats[1:][areas >= copyframe.KEEP * areas.max()]
    x0, y0 = int(keep[:, 0].min()), int(keep[:, 1].min())
    x1, y1 = int((keep[:, 0] + keep[:, 2]).max()), int((keep[:, 1] + keep[:, 3]).max())
    share = (x1 - x0) * (y1 - y0) / padding.size
    return (x0, y0, x1, y1) if copyframe.BOX_MIN <= share <= copyframe.BOX_MAX else None


def _frame(seed: int) -> np.ndarray:
    """A noisy photo with, by seed, a border, a screenshot's bars, rotation fill or
    flat specks (nothing flat at all for some seeds)."""
    rng = np.random.default_rng(seed)
    h, w = (288, 384) if seed % 2 else (384, 288)
    grey = rng.integers(0, 256, (h, w)).astype(np.uint8)
    kind = seed % 5
    if kind == 1:  # a border
        b = int(rng.integers(6, 40))
        grey[:b], grey[-b:], grey[:, :b], grey[:, -b:] = 20, 20, 20, 20
    elif kind == 2:  # screenshot: bars, the photo in the middle third, a button
        grey[: h // 3], grey[2 * h // 3 :] = 240, 240
        grey[h // 3 - 30 : h // 3 - 10, 20:60] = 30
    elif kind == 3:  # rotation fill in two corners, inside a thin border
        for y in range(h // 3):
            grey[y, : max(0, w // 3 - y)] = 0
            grey[h - 1 - y, w - max(0, w // 3 - y) :] = 0
        grey[:4] = 255
    elif kind == 4:  # flat patches in the middle and touching one edge
        grey[50:120, 60:200] = 128
        grey[h - 50 :, 100:180] = 90
    return grey


@pytest.mark.parametrize("seed", range(20))
def test_padding_and_box_match_the_statistics_route(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The labels OpenCV's statistics route gives, and its areas, lead to the same mask."""
    grey = _frame(seed)
    padding = copyframe.padding_mask(grey)

    def with_stats(mask: np.ndarray, connectivity: int) -> tuple[int, np.ndarray]:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=connectivity)
        areas = np.bincount(labels.ravel(), minlength=n)
        assert np.array_equal(areas, stats[:, cv2.CC_STAT_AREA])
        return n, labels

    monkeypatch.setattr(copyframe, "_components", with_stats)
    assert np.array_equal(copyframe.padding_mask(grey), padding)
    assert copyframe.content_box(padding) == _reference_box(padding)


def test_the_cases_above_are_not_all_alike() -> None:
    """The frames exercise both answers: some have padding and a content box, some none."""
    boxes = [copyframe.content_box(copyframe.padding_mask(_frame(s))) for s in range(20)]
    paddings = [bool(copyframe.padding_mask(_frame(s)).any()) for s in range(20)]
    assert any(b is not None for b in boxes) and any(b is None for b in boxes)
    assert any(paddings) and not all(paddings)


def test_box_of_arbitrary_masks_matches() -> None:
    """Random blobs of padding (many components, specks, the whole frame, none)."""
    rng = np.random.default_rng(7)
    masks = [np.zeros((96, 128), bool), np.ones((96, 128), bool)]
    for _ in range(60):
        m = np.zeros((96, 128), bool)
        for _ in range(int(rng.integers(1, 6))):
            y, x = rng.integers(0, 96), rng.integers(0, 128)
            m[y : y + int(rng.integers(1, 60)), x : x + int(rng.integers(1, 90))] = True
        masks.append(~m if rng.random() < 0.5 else m)
    got = [copyframe.content_box(m) for m in masks]
    assert got == [_reference_box(m) for m in masks]
    assert sum(b is not None for b in got) >= 5  # the box path is exercised
