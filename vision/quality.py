"""The photo-quality gate: is this photo good enough to grade the item from?

Every measurement is taken on a working copy with a fixed long side (512 px; 128 px for
the item mask), so a 12-megapixel original, its DCT-downscaled decode and a 1600 px
browser downscale all get the same verdict. Only ``resolution`` looks at the upload's own
size. Each failed check carries a sentence a shopper can act on.

Measurements (all scale-invariant):

- sharpness: per direction, derivative / local grey-level range at edge peaks ~ 1 / edge
  width, independent of contrast and of how much of the photo is textured, so a plain
  box with crisp outlines is sharp; the worst of 8 directions wins, so one-directional
  camera shake is caught even though edges along the shake stay crisp (see sharpness()).
- brightness: the 90th percentile of luma. A dark item on a light table is fine; a photo
  whose brighter parts are still dark is underexposed.
- clipped fraction: share of bright pixels (luma >= 200) with a channel at >= 250: burnt
  to white or to a washed-out pastel, detail lost. A saturated red mug is not counted.
- glare: the largest connected blob of clipped, colourless pixels as a fraction of the
  item area (a specular highlight on a mug is small; a flash reflection that hides a
  panel is not).
- item mask: the dominant colour mode of the border ring is the background (k-means in
  Lab, similar clusters merged); pixels far from it are the item. coverage = item
  fraction of the frame; cut_off = fraction of the frame border covered by the item.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import cv2
import numpy as np

from vision.errors import ConfigError
from vision.types import DecodedPhoto, QualityCheck, QualityReport

WORK_LONG_SIDE = 512
MASK_LONG_SIDE = 128
_CLIP_LUMA = 250


@dataclass(frozen=True)
class QualityThresholds:
    """Bounds for each check; load from YAML/settings with :meth:`from_dict`."""

    min_sharpness: float = 0.33  # ~ 1 / edge width at 512 px working size
    min_brightness: float = 70.0  # 90th percentile luma, 0..255
    max_clipped_fraction: float = 0.25  # share of burnt-out pixels
    max_glare_fraction: float = 0.02  # largest clipped blob / item area
    min_long_side: int = 640  # of the upload, in pixels
    min_short_side: int = 480
    min_coverage: float = 0.06  # item area / frame area
    max_edge_cut: float = 0.06  # share of the frame border covered by the item

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(
                    f"quality threshold {f.name} must be a number >= 0, got {value!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, base: QualityThresholds | None = None
    ) -> QualityThresholds:
        """Thresholds from a mapping; missing keys keep ``base`` (default: class defaults)."""
        if not isinstance(data, dict):
            raise ConfigError("quality thresholds must be a mapping")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown quality threshold(s): {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = (base or cls()).to_dict() | data
        return cls(**values)


SHOPPER = QualityThresholds()
# Dock cameras are fixed and lit; the gate there only stops frames that cannot be graded.
DOCK = QualityThresholds(
    min_sharpness=0.27,
    min_brightness=50.0,
    max_clipped_fraction=0.35,
    max_glare_fraction=0.05,
    min_long_side=480,
    min_short_side=360,
    min_coverage=0.03,
    max_edge_cut=0.15,
)
PROFILES: dict[str, QualityThresholds] = {"shopper": SHOPPER, "dock": DOCK}

_MESSAGES = {
    "blur": "The photo is blurry. Hold the phone steady, tap the screen to focus on the "
    "item, and take the photo again.",
    "underexposed": "The photo is too dark. Turn on a light or move near a window, then "
    "take the photo again.",
    "overexposed": "The photo is too bright and washed out. Avoid direct sunlight and "
    "turn off the flash, then tap the item to set the exposure.",
    "glare": "A bright reflection hides part of the item. Turn off the flash or tilt the "
    "phone so the reflection moves off the item.",
    "resolution": "The photo is too small ({w} x {h} pixels). Take it with the phone camera "
    "at full resolution (at least {mw} x {mh} pixels).",
    "coverage": "The item is too small in the photo. Move closer so the item fills most "
    "of the frame.",
    "cut_off": "Part of the item is cut off at the edge of the photo. Step back a little "
    "so the whole item is inside the frame.",
}


@dataclass(frozen=True)
class QualityMeasures:
    """Raw, profile-independent measurements of one photo."""

    sharpness: float
    brightness: float
    clipped_fraction: float
    glare_fraction: float
    long_side: int
    short_side: int
    coverage: float
    edge_cut: float


def working_copy(rgb: np.ndarray, long_side: int = WORK_LONG_SIDE) -> np.ndarray:
    """``rgb`` resized so its long side is exactly ``long_side`` (area filter to shrink)."""
    h, w = rgb.shape[:2]
    if max(h, w) == long_side:
        return rgb
    s = long_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, size, interpolation=interp)


def _line_kernel(theta: float, n: int = 9) -> np.ndarray:
    k = np.zeros((n, n), np.uint8)
    c = n // 2
    dx, dy = np.cos(theta) * c, np.sin(theta) * c
    cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1, 1)
    return k


_DIRECTIONS = tuple(i * np.pi / 8 for i in range(8))
_LINE_KERNELS = tuple(_line_kernel(t) for t in _DIRECTIONS)


def sharpness(rgb: np.ndarray) -> float:
    """Scale- and contrast-invariant sharpness: ~0.45 crisp, <= 0.3 visibly blurred.

    For each of 8 directions, at peaks of the directional derivative, the derivative over
    the grey-level range along a 9 px line in that direction is ~ 1 / edge width along
    it. The contrast-weighted 95th percentile keeps the photo's strongest edges (a plain
    box's outline counts; soft wood grain or shadows do not), and the worst direction
    wins, because camera shake blurs every edge along the shake direction. Edges seen
    obliquely score lower by cos(angle): an all-axis-aligned crisp box scores ~0.35.
    """
    gray = cv2.cvtColor(working_copy(rgb), cv2.COLOR_RGB2GRAY)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
    lo, hi = _percentiles_u8(gray, (1, 99))
    min_contrast = max(12.0, 0.1 * (hi - lo))
    square = np.ones((3, 3), np.uint8)
    min_level = int(np.ceil(min_contrast))  # contrast is uint8: >= x <=> >= ceil(x)
    per_direction = []
    for theta, kernel in zip(_DIRECTIONS, _LINE_KERNELS, strict=True):
        # (type: ignore: opencv's stubs lack the array-vs-scalar overloads it accepts)
        deriv = cv2.absdiff(
            cv2.addWeighted(
                gx,
                float(np.cos(theta)),
                gy,  # type: ignore
                float(np.sin(theta)),
                0.0,
            ),
            0.0,
        )
        contrast = cv2.subtract(cv2.dilate(gray, kernel), cv2.erode(gray, kernel))
        # OpenCV's SIMD compares give 0/255 masks; peaks are sparse (~1%), so the ratio
        # is computed on their indices only.
        is_max = cv2.compare(deriv, cv2.dilate(deriv, square), cv2.CMP_GE)
        positive = cv2.compare(deriv, 0.0, cv2.CMP_GT)  # type: ignore[call-overload]
        strong = cv2.compare(contrast, min_level, cv2.CMP_GE)  # type: ignore[call-overload]
        peaks = cv2.bitwise_and(cv2.bitwise_and(is_max, positive), strong)
        if cv2.countNonZero(peaks) < 20:
            continue
        xy = cv2.findNonZero(peaks).reshape(-1, 2)  # 3x faster than np.flatnonzero here
        idx = xy[:, 1] * peaks.shape[1] + xy[:, 0]
        c = contrast.ravel()[idx].astype(np.float32)
        # inverted_cdf: the smallest ratio whose cumulative contrast^2 weight reaches 95%
        ratio = deriv.ravel()[idx] / c
        p95 = np.percentile(ratio, 95.0, weights=c * c, method="inverted_cdf")
        per_direction.append(float(p95))
    return min(per_direction, default=0.0)


def _percentiles_u8(gray: np.ndarray, qs: tuple[float, ...]) -> tuple[float, ...]:
    """Percentiles of a uint8 image from its histogram (a sort-free np.percentile)."""
    cum = np.cumsum(np.bincount(gray.ravel(), minlength=256))
    return tuple(float(np.searchsorted(cum, q / 100.0 * cum[-1])) for q in qs)


def _kmeans(x: np.ndarray, k: int, iters: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic k-means (init at quantiles of the first principal axis)."""
    mu = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
    order = np.argsort((x - mu) @ vt[0])
    centres = x[order[((np.arange(k) + 0.5) * len(x) / k).astype(np.int64)]].copy()
    labels = np.zeros(len(x), np.int64)
    for _ in range(iters):
        labels = ((x[:, None, :] - centres[None]) ** 2).sum(-1).argmin(axis=1)
        counts = np.bincount(labels, minlength=k)
        sums = np.stack(
            [np.bincount(labels, weights=x[:, c], minlength=k) for c in range(x.shape[1])], axis=1
        )
        filled = counts > 0  # an empty cluster keeps its centre
        centres[filled] = sums[filled] / counts[filled, None]
    return centres, labels


def item_mask(
    rgb: np.ndarray,
    *,
    ring: int = 3,
    clusters: int = 4,
    merge: float = 12.0,
    min_distance: float = 9.0,
) -> np.ndarray:
    """Item (1) vs background (0), uint8 at 128 px long side.

    The background is the dominant colour mode of the border ring (k-means in Lab, similar
    clusters merged); pixels farther from it than its own spread are the item.

    Assumes one table/floor surface around the item; a second surface reaching the
    border (a wall behind the table) would count as item touching the border.
    """
    small = cv2.GaussianBlur(working_copy(rgb, MASK_LONG_SIDE), (0, 0), 1.2)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    lab *= np.array([0.8, 1.0, 1.0], np.float32)  # lighting varies more than colour
    h, w = lab.shape[:2]
    border = np.zeros((h, w), bool)
    border[:ring], border[-ring:], border[:, :ring], border[:, -ring:] = True, True, True, True
    samples = lab[border].astype(np.float64)
    centres, labels = _kmeans(samples, clusters)
    share = np.bincount(labels, minlength=clusters) / len(labels)
    # Merge clusters of similar colour (texture, shading), then take the largest group.
    group = list(range(clusters))
    for a in range(clusters):
        for b in range(a + 1, clusters):
            if np.linalg.norm(centres[a] - centres[b]) < merge:
                old, new = group[b], group[a]
                group = [new if g == old else g for g in group]
    totals = {g: sum(share[j] for j in range(clusters) if group[j] == g) for g in set(group)}
    best = max(totals, key=lambda g: totals[g])
    bg = [j for j in range(clusters) if group[j] == best and share[j] > 0]
    members = np.isin(labels, bg)
    spread = np.min(np.linalg.norm(samples[members, None, :] - centres[None, bg], axis=2), axis=1)
    threshold = max(min_distance, 1.5 * float(np.percentile(spread, 95)))
    dist = np.min(
        np.stack([np.linalg.norm(lab - centres[j].astype(np.float32), axis=2) for j in bg]), axis=0
    )
    fg = (dist > threshold).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    return _fill_holes(_drop_specks(fg, 0.003 * h * w))


def _drop_specks(fg: np.ndarray, min_area: float) -> np.ndarray:
    n, cc, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[cc].astype(np.uint8)


def _fill_holes(fg: np.ndarray) -> np.ndarray:
    n, cc = cv2.connectedComponents((1 - fg).astype(np.uint8), connectivity=4)
    outside = np.unique(np.concatenate([cc[0], cc[-1], cc[:, 0], cc[:, -1]]))
    holes = np.ones(n, bool)
    holes[outside] = False
    holes[0] = False
    out = fg.copy()
    out[holes[cc]] = 1
    return out


def border_fraction(mask: np.ndarray) -> float:
    """Share of the frame's outermost pixels that belong to the mask."""
    return float(np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]]).mean())


def _glare_fraction(work: np.ndarray, gray: np.ndarray, mask: np.ndarray) -> float:
    """Largest clipped, colourless blob relative to the item area.

    The item area is floored at 20% of the frame so that a small (or missed) item mask
    cannot turn a pin-point highlight into "glare".
    """
    hsv = cv2.cvtColor(work, cv2.COLOR_RGB2HSV)
    clipped = ((gray >= _CLIP_LUMA) & (hsv[..., 1] < 40)).astype(np.uint8)
    if not clipped.any():
        return 0.0
    _, _, stats, _ = cv2.connectedComponentsWithStats(clipped, connectivity=8)
    largest = float(stats[1:, cv2.CC_STAT_AREA].max()) / clipped.size
    return largest / max(float(mask.mean()), 0.2)


def measure(photo: DecodedPhoto) -> QualityMeasures:
    """All raw measurements for one photo (profile-independent)."""
    work = working_copy(photo.rgb)
    gray = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
    mask = item_mask(work)
    r, g, b = cv2.split(work)
    brightest_channel = cv2.max(cv2.max(r, g), b)
    return QualityMeasures(
        sharpness=sharpness(work),
        brightness=_percentiles_u8(gray, (90,))[0],
        clipped_fraction=float(np.mean((brightest_channel >= _CLIP_LUMA) & (gray >= 200))),
        glare_fraction=_glare_fraction(work, gray, mask),
        long_side=max(photo.original_width, photo.original_height),
        short_side=min(photo.original_width, photo.original_height),
        coverage=float(mask.mean()),
        edge_cut=border_fraction(mask),
    )


def _check(
    name: str, value: float, threshold: float, direction: Literal["min", "max"], **fmt: Any
) -> QualityCheck:
    passed = value >= threshold if direction == "min" else value <= threshold
    return QualityCheck(
        name=name,
        passed=bool(passed),
        value=float(value),
        threshold=float(threshold),
        direction=direction,
        message="" if passed else _MESSAGES[name].format(**fmt),
    )


def assess_quality(
    photo: DecodedPhoto, thresholds: QualityThresholds | None = None, *, profile: str = "shopper"
) -> QualityReport:
    """Run every check; ``thresholds`` defaults to the named profile's.

    Measurements happen at a 512 px working size, so decode with
    ``target_long_side >= 512`` (a smaller decode would be upsampled and read as blurry).
    """
    if thresholds is None:
        if profile not in PROFILES:
            raise ConfigError(
                f"unknown quality profile {profile!r}; choose one of {', '.join(PROFILES)}"
            )
        thresholds = PROFILES[profile]
    m, t = measure(photo), thresholds
    if m.long_side / max(t.min_long_side, 1) < m.short_side / max(t.min_short_side, 1):
        res_value, res_threshold = m.long_side, t.min_long_side
    else:
        res_value, res_threshold = m.short_side, t.min_short_side
    size = {
        "w": photo.original_width,
        "h": photo.original_height,
        "mw": t.min_long_side,
        "mh": t.min_short_side,
    }
    checks = (
        _check("blur", m.sharpness, t.min_sharpness, "min"),
        _check("underexposed", m.brightness, t.min_brightness, "min"),
        _check("overexposed", m.clipped_fraction, t.max_clipped_fraction, "max"),
        _check("glare", m.glare_fraction, t.max_glare_fraction, "max"),
        _check("resolution", res_value, res_threshold, "min", **size),
        _check("coverage", m.coverage, t.min_coverage, "min"),
        _check("cut_off", m.edge_cut, t.max_edge_cut, "max"),
    )
    return QualityReport(profile=profile, checks=checks)
