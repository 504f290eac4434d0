"""The quality gate's speed-ups change no output: each optimised piece against a plain
reference written here the way the gate used to compute it (issue 20).

The gate's measures must stay bit-identical (every verdict, and the fitted thresholds
of benchmarks/fit_quality.py, depend on them), so every comparison is ``==`` on floats
and ``array_equal`` on images, never approximate:

- sharpness: spatialGradient instead of two float Sobels, reused scratch images,
  a 0/1 peak mask read with flatnonzero; reference: the per-direction loop with fresh
  arrays, cv2.Sobel, findNonZero and numpy's weighted percentile;
- item mask: k-means distances from columns and stopping at a fixed point, the
  distance to the background per channel plane, the lighting plane's cached ring rows;
  reference: broadcasting, ``np.linalg.norm`` and all eight k-means steps;
- measure(): the 128 px mask copy, the brightest channel and the grey copy made once,
  saturation only when something clipped; reference: each check on the 512 px copy.

These few generated photos keep the guard to a couple of seconds; the speed-ups were
also checked bit-identical on ~600 photos (harness, real and degraded) when made.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from tests import photo_factory as pf
from vision import quality as q
from vision import quality_light as light
from vision import quality_mask as qm
from vision.types import DecodedPhoto


def _photos() -> dict[str, np.ndarray]:
    """A framed box, a close-up crop, a mug with glare, a shaken phone, a portrait book,
    a burnt-out box: every branch (framed, close-up, glare, clipped, skin-free edges)."""
    box = pf.item_scene(11, kind="box", background="wood", size=(800, 600))
    phone = pf.item_scene(13, kind="phone", background="wood", size=(800, 600))
    mug = pf.item_scene(12, kind="mug", background="plain", size=(800, 600), item_fraction=0.4)
    shaken = pf.item_scene(13, kind="phone", background="fabric", size=(800, 600))
    book = pf.item_scene(14, kind="book", background="plain", size=(600, 800), center=(0.3, 0.5))
    return {
        "box": box.rgb,
        "close-up": pf.crop_through_item(phone, fraction=0.2),
        "glare": pf.add_glare(mug.rgb, pf.item_centre(mug.mask), 0.12),
        "shaken": pf.motion_blur(shaken.rgb, 25, angle_deg=30),
        "portrait": book.rgb,
        "burnt": pf.burn_out(box.rgb),
    }


PHOTOS = _photos()


def _ref_sharpness(rgb: np.ndarray) -> float:
    """The sharpness loop as first written: fresh arrays, float Sobels, 0/255 masks."""
    gray = cv2.cvtColor(q.working_copy(rgb), cv2.COLOR_RGB2GRAY)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
    lo, hi = np.percentile(gray, (1, 99), method="inverted_cdf")
    min_level = int(np.ceil(max(12.0, 0.1 * (float(hi) - float(lo)))))
    per_direction = []
    for theta, kernel in zip(q._DIRECTIONS, q._LINE_KERNELS, strict=True):
        deriv = np.abs(cv2.addWeighted(gx, float(np.cos(theta)), gy, float(np.sin(theta)), 0.0))
        contrast = cv2.subtract(cv2.dilate(gray, kernel), cv2.erode(gray, kernel))
        is_max = deriv >= cv2.dilate(deriv, np.ones((3, 3), np.uint8))
        peaks = is_max & (deriv > 0) & (contrast >= min_level)
        if peaks.sum() < 20:
            continue
        xy = cv2.findNonZero(peaks.astype(np.uint8)).reshape(-1, 2)
        c = contrast[xy[:, 1], xy[:, 0]].astype(np.float32)
        ratio = deriv[xy[:, 1], xy[:, 0]] / c
        p95 = np.percentile(ratio, 95, weights=c * c, method="inverted_cdf")
        per_direction.append(float(p95))
    return min(per_direction, default=0.0)


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_sharpness_equals_the_reference_loop(name: str) -> None:
    assert q.sharpness(PHOTOS[name]) == _ref_sharpness(PHOTOS[name])


def test_weighted_p95_equals_numpy() -> None:
    """The partial sort against numpy's weighted percentile: ties, a few heavy weights at
    the bottom (the answer then lies in the lower four fifths: the full-sort branch),
    short and long arrays; weights are squared contrasts as in the gate."""
    rng = np.random.default_rng(5)
    branches = set()
    for trial in range(400):
        n = int(rng.integers(20, 4000))
        values = rng.random(n).astype(np.float32)
        if trial % 3 == 0:
            values = np.round(values * 20).astype(np.float32) / 20  # many ties
        contrast = rng.integers(12, 256, n).astype(np.float32)
        if trial % 4 == 0:  # heavy edges at the low values
            contrast[values < np.quantile(values, 0.5)] = 255
            contrast[values >= np.quantile(values, 0.5)] = 12
        weights = contrast * contrast
        expected = np.percentile(values, 95, weights=weights, method="inverted_cdf")
        assert q._weighted_p95(values, weights) == float(expected)
        lower = weights[np.argsort(values)][: int(0.8 * n)]  # the lower four fifths
        branches.add(bool(lower.sum() / weights.sum() >= 0.95))
    assert branches == {True, False}  # both branches ran


def test_sharpness_scratch_is_reused_safely() -> None:
    """Landscape and portrait photos alternate (a scratch set of another shape is
    replaced), and two threads measure at once (each call owns the set it took)."""
    names = ["box", "portrait", "glare", "portrait", "shaken"] * 2
    expected = {name: _ref_sharpness(PHOTOS[name]) for name in set(names)}
    got: dict[int, list[float]] = {}

    def run(k: int) -> None:
        got[k] = [q.sharpness(PHOTOS[name]) for name in names[k:] + names[:k]]

    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in (0, 1):
        assert got[k] == [expected[name] for name in names[k:] + names[:k]]


@pytest.mark.parametrize("shape", [(384, 512), (512, 384), (288, 512), (7, 5), (2, 512), (1, 3)])
def test_gradients_equal_float_sobel(shape: tuple[int, int]) -> None:
    gray = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    gx, gy = q._gradients(gray)
    assert np.array_equal(gx, cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8))
    assert np.array_equal(gy, cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8))


def _ref_kmeans(x: np.ndarray, k: int, iters: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """k-means as first written: broadcast distances, every one of the eight steps."""
    mu = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
    order = np.argsort((x - mu) @ vt[0])
    centres = x[order[((np.arange(k) + 0.5) * len(x) / k).astype(np.int64)]].copy()
    labels = np.zeros(len(x), np.int64)
    for _ in range(iters):
        labels = ((x[:, None, :] - centres[None]) ** 2).sum(-1).argmin(axis=1)
        counts = np.bincount(labels, minlength=k)
        sums = np.stack([np.bincount(labels, weights=x[:, c], minlength=k) for c in range(3)], 1)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres, labels


def test_kmeans_equals_the_full_reference() -> None:
    """Ring samples of every photo, and coarse integer data full of exact ties (argmin
    must pick the same cluster) and of empty clusters."""
    rng = np.random.default_rng(5)
    cases = [rng.integers(0, 4, (400, 3)).astype(np.float64) for _ in range(20)]
    cases += [rng.normal(0, 30, (1308, 3)) for _ in range(10)]
    for rgb in PHOTOS.values():
        small = cv2.GaussianBlur(qm.working_copy(rgb, 128), (0, 0), 1.2)
        lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
        cases.append(lab[qm._ring(*lab.shape[:2], 3)[0]].astype(np.float64))
    for x in cases:
        centres, labels = qm._kmeans(x, 4)
        ref_centres, ref_labels = _ref_kmeans(x, 4)
        assert np.array_equal(labels, ref_labels)
        assert np.array_equal(centres, ref_centres)


def test_sum_of_squares_equals_numpy_norm() -> None:
    rng = np.random.default_rng(6)
    lab = (rng.normal(0, 40, (96, 128, 3))).astype(np.float32)
    centre = rng.normal(0, 40, 3).astype(np.float32)
    planes = list(cv2.split(lab))
    expected = np.linalg.norm(lab - centre, axis=2)
    assert np.array_equal(np.sqrt(qm._sum_of_squares(planes, list(centre))), expected)


def _ref_item_mask(rgb: np.ndarray) -> np.ndarray:
    """item_mask as first written (ring rebuilt, lighting plane with its medians taken
    twice, reference k-means, the norm over a stacked array)."""
    small = cv2.GaussianBlur(qm.working_copy(rgb, 128), (0, 0), 1.2)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    h, w = lab.shape[:2]
    border = np.zeros((h, w), bool)
    border[:3], border[-3:], border[:, :3], border[:, -3:] = True, True, True, True
    lab[..., 0] -= qm._lighting_plane(lab[..., 0], border, qm._plane_design(h, w)[border.ravel()])
    lab *= np.array([0.8, 1.0, 1.0], np.float32)
    samples = lab[border].astype(np.float64)
    centres, labels = _ref_kmeans(samples, 4)
    bg = qm._background_clusters(centres, labels, 12.0)
    members = np.isin(labels, bg)
    spread = np.min(np.linalg.norm(samples[members, None, :] - centres[None, bg], axis=2), axis=1)
    threshold = max(9.0, 1.5 * float(np.percentile(spread, 95)))
    dist = np.min(
        np.stack([np.linalg.norm(lab - centres[j].astype(np.float32), axis=2) for j in bg]), axis=0
    )
    fg = (dist > threshold).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    return qm._fill_holes(qm._drop_specks(fg, 0.003 * h * w))


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_item_mask_and_framing_from_the_128px_copy(name: str) -> None:
    """measure() hands item_mask and framing the 128 px copy instead of the 512 px one."""
    work = q.working_copy(PHOTOS[name])
    small = qm.working_copy(work, qm.MASK_LONG_SIDE)
    mask = qm.item_mask(small)
    assert np.array_equal(mask, _ref_item_mask(work))
    assert np.array_equal(mask, qm.item_mask(work))
    assert qm.framing(mask, small) == qm.framing(mask, work)


def _ref_measure(photo: DecodedPhoto) -> q.QualityMeasures:
    """measure() as first written: every check from the 512 px copy, saturation always."""
    work = q.working_copy(photo.rgb)
    gray = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
    mask = qm.item_mask(work)
    frame = qm.framing(mask, work)
    clip = (work.max(axis=2) >= 250) & (gray >= 200)  # burnt: a channel at 250, luma 200
    item = cv2.resize(mask, gray.shape[::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
    framed = not frame.close_up and frame.edge_cut <= 0.03 and frame.coverage >= 0.05
    sat = cv2.cvtColor(work, cv2.COLOR_RGB2HSV)[..., 1]
    return q.QualityMeasures(
        sharpness=_ref_sharpness(work),
        brightness=float(np.percentile(work.max(axis=2), 90, method="inverted_cdf")),
        clipped_fraction=light.clipped_fraction(clip, item, framed),
        glare_fraction=light.glare_fraction(gray, sat, clip, ~item if framed else None),
        long_side=max(photo.original_width, photo.original_height),
        short_side=min(photo.original_width, photo.original_height),
        coverage=frame.coverage,
        edge_cut=0.0 if frame.close_up else frame.edge_cut,
        close_up=frame.close_up,
    )


def test_measure_equals_the_reference() -> None:
    seen = []
    for rgb in PHOTOS.values():
        h, w = rgb.shape[:2]
        photo = DecodedPhoto(rgb, w, h, "jpeg", "0" * 64, 0)
        m = q.measure(photo)
        assert m == _ref_measure(photo)
        seen.append(m)
    # the photos exercise the branches the shortcuts take
    assert any(m.glare_fraction > 0 for m in seen)
    assert any(m.clipped_fraction == 0 for m in seen)
    assert any(m.close_up for m in seen)
