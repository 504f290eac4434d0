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
- brightness: the 90th percentile of the brightest channel (HSV value; luma would call a
  saturated red table dark). A dark item on a light table is fine; a photo
  whose brighter parts are still dark is underexposed.
- clipped fraction: share of bright pixels (luma >= 200) with a channel at >= 250 (burnt
  to white or a washed-out pastel), over the frame with the white backdrop left out: a
  clipped background region that touches the frame edge (a studio sweep) carries no
  detail of the item, so a product shot on white is judged on the product.
- glare: the largest clipped, colourless blob INSIDE the item, not touching the frame
  edge, whose surrounding ring is clearly darker (a specular highlight), relative to the
  item area. A white backdrop or an evenly white item is not glare.
- item mask (vision/quality_mask.py): the dominant colour mode of the border ring is the
  background; pixels far from it are the item. coverage = item fraction of the frame;
  cut_off = share of a 3 px border ring (at 128 px) covered by the item, skin-coloured
  pixels (a holding hand) left out; 0 for a close-up (the item reaches all four edges and
  fills >= 45% of the frame: a view of a damaged spot, not a badly framed item).

Thresholds are fitted by benchmarks/fit_quality.py (record: benchmarks/results/).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import cv2
import numpy as np

from vision.errors import ConfigError
from vision.quality_mask import framing, item_mask, skin_mask
from vision.quality_mask import working_copy as _resize_long_side
from vision.types import DecodedPhoto, QualityCheck, QualityReport

WORK_LONG_SIDE = 512
_CLIP_LUMA = 250
# A highlight's surroundings must be darker than this (median luma) for it to be glare.
_GLARE_RING_LUMA = 225.0


@dataclass(frozen=True)
class QualityThresholds:
    """Bounds for each check; load from YAML/settings with :meth:`from_dict`."""

    # Fitted by benchmarks/fit_quality.py on its FIT part (renders 640-1600 px, studio,
    # hand-held, browser 1600 px downscale, real car-damage photos); the record, with
    # held-out rates, is benchmarks/results/quality_fit.md. Was 0.33 / 70 / 0.25 / 0.02 /
    # 0.06 (brightness was luma then) before the re-fit.
    min_sharpness: float = 0.237  # ~ 1 / edge width at 512 px working size
    min_brightness: float = 102.5  # 90th percentile of max(R, G, B) (-3 EV must fail)
    max_clipped_fraction: float = 0.056  # burnt-out share, white backdrop left out
    max_glare_fraction: float = 0.024  # largest highlight on the item / item area
    min_long_side: int = 640  # of the upload, in pixels (policy, not fitted)
    min_short_side: int = 480
    min_coverage: float = 0.06  # item area / frame area (not re-fitted)
    max_edge_cut: float = 0.071  # share of the border covered by the item (hand excluded)

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
    min_sharpness=0.18,
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
    edge_cut: float  # 0 for a close-up: no whole item to fit in the frame
    close_up: bool = False


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


def working_copy(rgb: np.ndarray, long_side: int = WORK_LONG_SIDE) -> np.ndarray:
    """``rgb`` resized so its long side is exactly ``long_side`` (area filter to shrink)."""
    return _resize_long_side(rgb, long_side)


def _item_region(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The 128 px item mask at the working size, as a bool array."""
    return cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def _clipped(work: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """Burnt pixels: bright (luma >= 200) with a channel at >= 250 (white or washed-out
    pastel, detail lost); a saturated red mug is not counted."""
    r, g, b = cv2.split(work)
    return (cv2.max(cv2.max(r, g), b) >= _CLIP_LUMA) & (gray >= 200)


def _backdrop(clipped: np.ndarray, item: np.ndarray) -> np.ndarray:
    """Clipped background connected to the frame edge: a white studio backdrop (or a white
    wall). It carries no detail of the item, so it is neither glare nor overexposure."""
    bg_clip = (clipped & ~item).astype(np.uint8)
    n, cc = cv2.connectedComponents(bg_clip, connectivity=8)
    if n <= 1:
        return np.zeros_like(clipped)
    edge = np.unique(np.concatenate([cc[0], cc[-1], cc[:, 0], cc[:, -1]]))
    touches = np.zeros(n, bool)
    touches[edge] = True
    touches[0] = False
    return touches[cc]


def _clipped_fraction(clipped: np.ndarray, backdrop: np.ndarray) -> float:
    """Share of the frame, white backdrop left out, that is burnt out.

    A product on a white studio background is judged on the product; a burnt-out photo
    also washes out the item, so its share stays high. A frame that is backdrop only (or
    burnt through) is measured whole."""
    rest = ~backdrop
    if rest.mean() < 0.1:
        return float(clipped.mean())
    return float((clipped & rest).sum() / rest.sum())


def _glare_fraction(
    gray: np.ndarray, hsv_sat: np.ndarray, clipped: np.ndarray, item: np.ndarray
) -> float:
    """Largest specular highlight on the item, relative to the item area.

    A highlight is a clipped, colourless blob inside the item (the white backdrop and
    anything touching the frame edge are not) that is brighter than what surrounds it: its
    ring, 0.8 of its radius wide, must be clearly below clipping. A white item, evenly
    lit, has no such ring and is not glare. The item area is floored at 20% of the frame so
    a small (or missed) item mask cannot turn a pin-point highlight into glare.
    """
    spots = (clipped & (hsv_sat < 40) & item).astype(np.uint8)
    n, cc, stats, _ = cv2.connectedComponentsWithStats(spots, connectivity=8)
    if n <= 1:
        return 0.0
    h, w = spots.shape
    largest = 0.0
    for i in np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:5] + 1:
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area < 4 or x == 0 or y == 0 or x + bw == w or y + bh == h:
            continue
        pad = max(3, round(0.8 * np.sqrt(area / np.pi)))
        x0, y0, x1, y1 = (
            max(0, x - pad),
            max(0, y - pad),
            min(w, x + bw + pad),
            min(h, y + bh + pad),
        )
        blob = (cc[y0:y1, x0:x1] == i).astype(np.uint8)
        ring = cv2.dilate(blob, np.ones((2 * pad + 1, 2 * pad + 1), np.uint8)) > blob
        if ring.any() and float(np.median(gray[y0:y1, x0:x1][ring])) < _GLARE_RING_LUMA:
            largest = max(largest, area / spots.size)
    return largest / max(float(item.mean()), 0.2)


def measure(photo: DecodedPhoto) -> QualityMeasures:
    """All raw measurements for one photo (profile-independent)."""
    work = working_copy(photo.rgb)
    gray = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
    mask = item_mask(work)
    frame = framing(mask, skin_mask(work))
    item = _item_region(mask, gray.shape)
    clipped = _clipped(work, gray)
    backdrop = _backdrop(clipped, item)
    sat = cv2.cvtColor(work, cv2.COLOR_RGB2HSV)[..., 1]
    return QualityMeasures(
        sharpness=sharpness(work),
        brightness=_percentiles_u8(
            cv2.max(cv2.max(work[..., 0], work[..., 1]), work[..., 2]), (90,)
        )[0],
        clipped_fraction=_clipped_fraction(clipped, backdrop),
        glare_fraction=_glare_fraction(gray, sat, clipped, item),
        long_side=max(photo.original_width, photo.original_height),
        short_side=min(photo.original_width, photo.original_height),
        coverage=frame.coverage,
        edge_cut=0.0 if frame.close_up else frame.edge_cut,
        close_up=frame.close_up,
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
