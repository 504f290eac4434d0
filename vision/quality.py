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
- clipped fraction (vision/quality_light.py): pixels burnt to white or a washed-out pastel
  (luma >= 200 with a channel >= 250). For an item framed whole (item mask found, clear
  of every side of the frame, a holding hand left out), the share of the ITEM that
  clipped, so a product on a white sweep or table is judged on the product; for any
  other photo (close-up, item running off the frame, street scene), the share of the
  frame, since there every clipped pixel is detail lost.
- glare (vision/quality_light.py): the largest disc hidden by a clipped, colourless blob
  that does not touch the frame edge and whose surroundings are clearly darker (a
  specular highlight), as a share of the frame. A white backdrop touches the edge, an
  evenly white item has no darker ring, and a thin white stripe or print hides no disc.
- item mask (vision/quality_mask.py): the border ring's colours found most and all
  around (after removing the light falling across the table) are the background; pixels
  far from them are the item. coverage = item fraction of the frame; edge_cut = the
  largest share of one side of the border the item covers, a holding hand (a narrow,
  skin-coloured stretch, smaller than what it holds) left out; 0 for a close-up (the
  item reaches all four edges and fills >= 45% of the frame: a view of a damaged spot,
  not a badly framed item).

Thresholds are fitted by benchmarks/fit_quality.py (record: benchmarks/results/).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import cv2
import numpy as np

from vision import quality_light as light
from vision.errors import ConfigError
from vision.quality_mask import MASK_LONG_SIDE, framing, item_mask
from vision.quality_mask import working_copy as _resize_long_side
from vision.types import DecodedPhoto, QualityCheck, QualityReport

WORK_LONG_SIDE = 512
# The item is framed whole (the exposure check then judges the item, not the white sweep
# or table around it) when it covers at most this share of any side of the frame border,
# a holding hand left out, and the item mask finds an item of at least this size.
_FRAMED_MAX_EDGE_CUT = 0.03
_FRAMED_MIN_COVERAGE = 0.05


@dataclass(frozen=True)
class QualityThresholds:
    """Bounds for each check; load from YAML/settings with :meth:`from_dict`."""

    # Fitted by benchmarks/fit_quality.py on its FIT half (renders 640-1600 px, studio,
    # hand-held, browser 1600 px downscale, real car-damage photos); the record, with
    # held-out rates, is benchmarks/results/quality_fit.md. The exposure, glare and
    # cut-off measures changed with this fit (see the module docstring), so their
    # values are not comparable with the earlier 0.056 / 0.024 / 0.071.
    min_sharpness: float = 0.228  # ~ 1 / edge width at 512 px working size
    min_brightness: float = 102.5  # 90th percentile of max(R, G, B) (-3 EV must fail)
    max_clipped_fraction: float = 0.183  # burnt share of the framed item, else of the frame
    max_glare_fraction: float = 0.011  # disc hidden by the largest highlight / frame area
    min_long_side: int = 640  # of the upload, in pixels (policy, not fitted)
    min_short_side: int = 480
    min_coverage: float = 0.06  # item area / frame area (not re-fitted)
    max_edge_cut: float = 0.055  # largest share of one border side covered by the item

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
    max_glare_fraction=0.03,  # a reflection hiding a disc ~10% of the short side across
    min_long_side=480,
    min_short_side=360,
    min_coverage=0.03,
    max_edge_cut=0.2,  # the crop may cut the item along a fifth of one side
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
_SQUARE = np.ones((3, 3), np.uint8)


def sharpness(rgb: np.ndarray) -> float:
    """Scale- and contrast-invariant sharpness: ~0.45 crisp, <= 0.3 visibly blurred.

    For each of 8 directions, at peaks of the directional derivative, the derivative over
    the grey-level range along a 9 px line in that direction is ~ 1 / edge width along
    it. The contrast-weighted 95th percentile keeps the photo's strongest edges (a plain
    box's outline counts; soft wood grain or shadows do not), and the worst direction
    wins, because camera shake blurs every edge along the shake direction. Edges seen
    obliquely score lower by cos(angle): an all-axis-aligned crisp box scores ~0.35.
    """
    return _gray_sharpness(cv2.cvtColor(working_copy(rgb), cv2.COLOR_RGB2GRAY))


# Scratch image sets of _gray_sharpness not in use (~4.7 MB each at 512 x 384): fresh
# 0.2-0.8 MB arrays, a dozen per photo, cost ~0.7 ms in page faults alone. A set is owned
# by one call between pop and append (both atomic), and at most _SPARE_MAX are kept, so
# a burst of request threads does not leave one set per thread behind.
_SPARE: list[tuple[np.ndarray, ...]] = []
_SPARE_MAX = 4


def _scratch(shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """A spare scratch set of ``shape`` (or a new one). Every image in it is overwritten
    whole before it is read, so nothing carries over from the photo before."""
    try:
        bufs = _SPARE.pop()
    except IndexError:
        bufs = ()
    if not bufs or bufs[0].shape != shape:
        types = (np.int16,) * 2 + (np.float32,) * 4 + (np.uint8,) * 4
        bufs = tuple(np.empty(shape, t) for t in types)
    return bufs


def _gray_sharpness(gray: np.ndarray) -> float:
    """:func:`sharpness` of the grey working copy (taken and given back scratch)."""
    bufs = _scratch(gray.shape)
    try:
        return _sharpness_in(gray, *bufs)
    finally:
        if len(_SPARE) < _SPARE_MAX:
            _SPARE.append(bufs)


def _sharpness_in(gray: np.ndarray, *scratch: np.ndarray) -> float:
    """The measurement itself, every image written into ``scratch``."""
    dx, dy, gx, gy, deriv, around, contrast, low, peaks, mask = scratch
    _gradients(gray, dx, dy, gx, gy)  # cv2.Sobel(gray, CV_32F, 1, 0 / 0, 1, scale=1 / 8)
    lo, hi = light.percentiles_u8(gray, (1, 99))
    min_level = int(np.ceil(max(12.0, 0.1 * (hi - lo))))  # uint8: >= x <=> >= ceil(x)
    per_direction = []
    for theta, kernel in zip(_DIRECTIONS, _LINE_KERNELS, strict=True):
        # |cos * gx + sin * gy|; numpy's abs in place is exact and cheaper than cv2's
        cv2.addWeighted(gx, float(np.cos(theta)), gy, float(np.sin(theta)), 0.0, dst=deriv)
        np.abs(deriv, out=deriv)
        cv2.dilate(gray, kernel, dst=contrast)
        cv2.subtract(contrast, cv2.erode(gray, kernel, dst=low), dst=contrast)
        # peaks: local max with strong contrast, then (on those few) derivative > 0. The
        # compare gives 0/255, the threshold (uint8: > level - 1 <=> >= level) 0/1, so
        # peaks is a valid bool array (flatnonzero: half findNonZero's cost, row-major).
        cv2.compare(deriv, cv2.dilate(deriv, _SQUARE, dst=around), cv2.CMP_GE, dst=peaks)
        cv2.threshold(contrast, min_level - 1, 1, cv2.THRESH_BINARY, dst=mask)
        cv2.bitwise_and(peaks, mask, dst=peaks)
        idx = np.flatnonzero(peaks.view(np.bool_))
        idx = idx[deriv.ravel()[idx] > 0]
        if len(idx) < 20:
            continue
        c = contrast.ravel()[idx].astype(np.float32)
        # inverted_cdf: the smallest ratio whose cumulative contrast^2 weight reaches 95%
        per_direction.append(_weighted_p95(deriv.ravel()[idx] / c, c * c))
    return min(per_direction, default=0.0)


def _gradients(gray: np.ndarray, *out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.Sobel(gray, cv2.CV_32F, 1, 0 | 0, 1, ksize=3, scale=1 / 8)``, bit for bit, at
    a quarter of the cost: one ``spatialGradient`` pass gives both as int16 (the same
    kernels and reflect-101 border), and int16 / 8 is exact in float32. ``out``: int16
    dx, dy and float32 gx, gy to write into."""
    dx, dy, gx, gy = out or [np.empty(gray.shape, t) for t in (np.int16,) * 2 + (np.float32,) * 2]
    cv2.spatialGradient(gray, dx, dy)
    for d, g in ((dx, gx), (dy, gy)):
        np.copyto(g, d)
        g *= 0.125
    return gx, gy


def _weighted_p95(values: np.ndarray, weights: np.ndarray) -> float:
    """``np.percentile(values, 95, weights=weights, method="inverted_cdf")``: the smallest
    value whose cumulative weight (values in ascending order) reaches 95% of the total,
    without numpy's generic machinery (~1 ms a call, eight calls per photo).

    Only the top fifth of the values is sorted: one partition splits off the lower four
    fifths, whose weight is summed, and the answer is searched in the sorted rest (when
    the lower part already holds 95% of the weight, in all of them sorted). Exact, and
    the same answer as a full sort: the weights are squared contrasts (integers from 144
    to 65,025 in float32), so every cumulative sum is an exact integer in float64 in any
    order, and the answer depends only on the weight below each distinct value, not on
    the order of equal values."""
    total = weights.sum(dtype=np.float64)
    cut = int(0.8 * len(values))
    split = np.argpartition(values, cut)
    below = weights[split[:cut]].sum(dtype=np.float64)
    if below / total >= 0.95:  # the answer lies in the lower part: sort everything
        split, cut, below = np.arange(len(values)), 0, np.float64(0.0)
    top = values[split[cut:]]
    order = np.argsort(top)
    cdf = weights[split[cut:]][order].cumsum(dtype=np.float64)
    cdf += below
    cdf /= total
    i = min(int(np.searchsorted(cdf, 0.95, side="left")), len(top) - 1)
    return float(top[order[i]])


def working_copy(rgb: np.ndarray, long_side: int = WORK_LONG_SIDE) -> np.ndarray:
    """``rgb`` resized so its long side is exactly ``long_side`` (area filter to shrink)."""
    return _resize_long_side(rgb, long_side)


def _item_region(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The 128 px item mask at the working size, as a bool array."""
    return cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def measure(photo: DecodedPhoto) -> QualityMeasures:
    """All raw measurements for one photo (profile-independent).

    Each derived image is made once and handed to every check that reads it: the grey
    working copy, the brightest channel (brightness and clipping), and the 128 px mask
    copy (``item_mask`` and ``framing`` would each shrink the 512 px copy again; a copy
    already at 128 px is used as is). Saturation is only read where something clipped."""
    work = working_copy(photo.rgb)
    gray = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
    brightest = light.brightest_channel(work)
    small = _resize_long_side(work, MASK_LONG_SIDE)
    mask = item_mask(small)
    frame = framing(mask, small)
    clip = light.clipped_where(brightest, gray)
    item = _item_region(mask, gray.shape)
    framed = (
        not frame.close_up
        and frame.edge_cut <= _FRAMED_MAX_EDGE_CUT
        and frame.coverage >= _FRAMED_MIN_COVERAGE
    )
    glare = 0.0  # glare_fraction's own answer when nothing clipped
    if clip.any():
        sat = light.saturation_where(work, clip)  # where glare_fraction reads it
        glare = light.glare_fraction(gray, sat, clip, ~item if framed else None)
    return QualityMeasures(
        sharpness=_gray_sharpness(gray),
        brightness=light.percentiles_u8(brightest, (90,))[0],
        clipped_fraction=light.clipped_fraction(clip, item, framed),
        glare_fraction=glare,
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
