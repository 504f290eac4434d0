"""The photos the quality gate is fitted and judged on: clean sets and degradations.

Used by ``benchmarks/fit_quality.py`` (which fits the thresholds and writes the record) and
by ``tests/test_quality_fit.py`` (which judges them on the held-out part). Every photo has
a name; a fixed hash of the name puts it in the FIT or the HELD-OUT half, so the script
and the tests draw the same split whatever the order or count, and a caller that only
needs one half renders only that half.

Clean sets (each photo with its upload bytes, the serving path decodes them):

- ``render``: the generator's clean renders at 640, 1024 and 1600 px (``vision.synth``);
- ``studio``: the same items on a white, partly clipped studio backdrop (web product
  photos), which must read neither as glare nor as overexposure;
- ``hand``: renders with a hand and forearm reaching in from the bottom edge to hold the
  item (a normal shopper photo, not an item cut off by the edge);
- ``browser``: 2048 px renders through the shopper page's downscale (long side to 1600,
  smooth resampling, JPEG quality 0.9, as ``serving/web/static/js/shopper.js`` does);
- ``car``: real car-damage photos from ``../shared/datasets/car-damage-severity`` (close-ups
  and street photos of damage, not taken for a returns gate: only the blur, exposure and
  glare checks apply). ELPV solar-cell images are inspection images and are left out.

Degradations a shopper must retake, made from every clean photo. Strengths are stated for
a 640 px frame (the smallest upload the gate accepts) and scaled with the photo's long
side, because the gate measures on a fixed 512 px working copy: blur is judged as a share
of the frame, like a person looking at the photo on a screen. A generated photo knows
where its item is (``Photo.item``), so the exposure and glare degradations act on the item,
as a shopper's bad photo would:

- ``gaussian``: sigma 3 (x long/640); ``motion``: 20 px (x long/640) at an angle per photo;
- ``dark``: -3 EV;
- ``burnt``: exposed until half of the item is blown to white (a car photo: half the frame);
- ``glare``: a specular blob of radius 12% of the short side on the item's deepest point
  (a car photo: the frame centre);
- ``cut_off``: the generator's cut-off placement (the item runs 30-50% off one edge).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import cv2
import numpy as np

from vision.decode import decode_image
from vision.synth import scene as synth_scene
from vision.synth.dataset import SynthConfig, plan_item
from vision.synth.scene import render_photo

ROOT = Path(__file__).resolve().parents[1]
CAR_DATASET = ROOT.parent / "shared" / "datasets" / "car-damage-severity"
RENDER_SIZES = (640, 1024, 1600)
HELD_OUT_SHARE = 0.5
REFERENCE_LONG_SIDE = 640
GAUSS_SIGMA = 3.0
MOTION_PX = 20
DARK_GAIN = 1 / 8  # -3 EV
GLARE_RADIUS = 0.12
BROWSER_SIDE, BROWSER_QUALITY = 1600, 90
BROWSER_RENDER = 2048  # the phone photo the shopper page downscales
SEED = 2024


def is_held_out(name: str) -> bool:
    """Fixed split by name: the same photo is always in the same part."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < HELD_OUT_SHARE


@dataclass(frozen=True)
class Photo:
    """One clean photo: its name, set, RGB pixels and what the gate may expect of it."""

    name: str
    set: str
    rgb: np.ndarray
    whole_item: bool  # an item photo framed whole (the cut-off and coverage checks apply)
    item: np.ndarray | None = None  # the item's visible silhouette (generated photos)


# ------------------------------------------------------------------------ encoding
def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return buf.tobytes()


def browser_downscale(rgb: np.ndarray, long_side: int = BROWSER_SIDE) -> bytes:
    """The shopper page's upload: long side to ``long_side`` (never up), smooth
    resampling (canvas ``imageSmoothingQuality = "high"`` ~ area filter), JPEG q 0.9."""
    h, w = rgb.shape[:2]
    s = min(1.0, long_side / max(h, w))
    if s < 1:
        rgb = cv2.resize(
            rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA
        )
    return jpeg(rgb, BROWSER_QUALITY)


# ------------------------------------------------------------------------ clean sets
def _render(
    index: int, size: int, *, background: str | np.ndarray | None, bad: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """A generated photo and the item's silhouette in it (bool, HxW).

    The generator returns the damage mask, not where the item is; the silhouette is the
    item's own alpha warped by the placement the generator drew (captured, not re-drawn,
    so the photo is byte for byte what ``render_photo`` makes). The degradations use it
    to burn out and to put glare on the ITEM, as a shopper's bad photo would."""
    config = SynthConfig(count=index + 1, seed=SEED, image_size=size)
    plan = plan_item(config, index)
    rng = np.random.default_rng([SEED, 23, index, size])
    placed: list[tuple[np.ndarray, np.ndarray]] = []
    draw = synth_scene._placement

    def spy(item: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        homography = draw(item, *args, **kwargs)
        placed.append((item.rgba[..., 3], homography))
        return homography

    with mock.patch.object(synth_scene, "_placement", spy):
        rgb, _ = render_photo(plan.sku, plan.state, rng, size, background=background, bad=bad)
    alpha, homography = placed[0]
    silhouette = cv2.warpPerspective(alpha, homography, (size, size), flags=cv2.INTER_LINEAR)
    return rgb, silhouette >= 128


def studio_backdrop(size: int, rng: np.random.Generator) -> np.ndarray:
    """A white sweep: clipped at the top, a faint grey falloff toward the bottom."""
    ys = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    level = 262 - rng.uniform(8, 22) * ys
    return np.clip(np.broadcast_to(level, (size, size, 3)), 0, 255).astype(np.float32)


def add_hand(rgb: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A forearm and hand reaching up from the bottom edge to hold the item's lower part;
    returns the photo and where the hand is (bool)."""
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    tone = np.array(
        [(224, 172, 140), (198, 134, 100), (141, 85, 60), (236, 188, 160)][seed % 4], np.float32
    ) * rng.uniform(0.9, 1.05)
    cx = w * rng.uniform(0.4, 0.6)
    top = h * rng.uniform(0.6, 0.7)
    palm = np.zeros((h, w), np.uint8)
    cv2.ellipse(palm, (round(cx), round(top)), (round(0.13 * w), round(0.07 * h)), 0, 0, 360, 1, -1)
    arm = np.array(
        [[cx - 0.08 * w, top], [cx + 0.08 * w, top], [cx + 0.1 * w, h], [cx - 0.1 * w, h]],
        np.int32,
    )
    cv2.fillPoly(palm, [arm], 1)
    alpha = cv2.GaussianBlur(palm.astype(np.float32), (0, 0), 0.004 * w)[..., None]
    shade = 0.85 + 0.15 * np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    out = rgb * (1 - alpha) + tone * shade * alpha
    return np.clip(out, 0, 255).astype(np.uint8), alpha[..., 0] >= 0.5


def car_files(limit: int) -> list[Path]:
    """Up to ``limit`` car-damage photos, picked by name hash (every split and class)."""
    if not CAR_DATASET.is_dir():
        return []
    files = sorted(CAR_DATASET.glob("*/*/*.jpg"))
    ranked = sorted(files, key=lambda p: hashlib.sha256(p.name.encode()).digest())
    return sorted(ranked[:limit])


def _wanted(name: str, held_out: bool | None) -> bool:
    return held_out is None or is_held_out(name) is held_out


def clean_photos(
    per_set: int, cars: int, held_out: bool | None = None, browser: int | None = None
) -> Iterator[tuple[Photo, bytes]]:
    """Every clean photo with its upload bytes: ``per_set`` names per generated set
    (``browser`` for the browser set, default ``per_set``) and ``cars`` car-damage files,
    of which only the ``held_out`` half (None: both) is made."""
    browser = per_set if browser is None else browser
    for i in range(max(per_set, browser)):
        size = RENDER_SIZES[i % len(RENDER_SIZES)]
        generated = i < per_set
        name = f"render-{size}-{i}"
        if generated and _wanted(name, held_out):
            rgb, item = _render(i, size, background=None, bad=None)
            yield Photo(name, "render", rgb, True, item), jpeg(rgb)
        j = 1000 + i
        name = f"studio-{size}-{j}"
        if generated and _wanted(name, held_out):
            sweep = studio_backdrop(size, np.random.default_rng(j))
            rgb, item = _render(j, size, background=sweep, bad=None)
            yield Photo(name, "studio", rgb, True, item), jpeg(rgb)
        j = 2000 + i
        name = f"hand-{size}-{j}"
        if generated and _wanted(name, held_out):
            rgb, item = _render(j, size, background=None, bad=None)
            rgb, hand = add_hand(rgb, j)
            yield Photo(name, "hand", rgb, True, item & ~hand), jpeg(rgb)
        j = 3000 + i
        name = f"browser-{BROWSER_SIDE}-{j}"
        if i < browser and _wanted(name, held_out):
            rgb, item = _render(j, BROWSER_RENDER, background=None, bad=None)
            data = browser_downscale(rgb)
            small = decode_image(data).rgb
            size_wh = (small.shape[1], small.shape[0])
            item = cv2.resize(item.astype(np.uint8), size_wh, interpolation=cv2.INTER_NEAREST)
            item = item.astype(bool)
            yield Photo(name, "browser", small, True, item), data
    for path in car_files(cars):
        name = f"car-{path.parent.parent.name}-{path.name}"
        if _wanted(name, held_out):
            data = path.read_bytes()
            rgb = decode_image(data, target_long_side=None).rgb
            yield Photo(name, "car", rgb, False), data


# ------------------------------------------------------------------------ degradations
def _scale(rgb: np.ndarray) -> float:
    return max(rgb.shape[:2]) / REFERENCE_LONG_SIDE


def gaussian(rgb: np.ndarray, sigma: float = GAUSS_SIGMA) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), sigma * _scale(rgb))


def motion(rgb: np.ndarray, length: float = MOTION_PX, angle_deg: float = 20.0) -> np.ndarray:
    n = max(3, round(length * _scale(rgb)))
    line = np.zeros((n, n), np.float32)
    line[n // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), angle_deg, 1.0)
    k = np.asarray(cv2.warpAffine(line, rot, (n, n)), np.float32)
    return np.asarray(cv2.filter2D(rgb, -1, k / k.sum()))


def exposure(rgb: np.ndarray, gain: float) -> np.ndarray:
    """Exposure change in linear light (gain 1/8 = -3 EV)."""
    lin = (np.arange(256, dtype=np.float64) / 255.0) ** 2.2 * gain
    lut = (np.clip(lin, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)
    return cv2.LUT(np.ascontiguousarray(rgb), lut)


def _linear(rgb: np.ndarray) -> np.ndarray:
    return (rgb.astype(np.float32) / 255.0) ** 2.2


def burn_out(rgb: np.ndarray, item: np.ndarray | None = None) -> np.ndarray | None:
    """Overexposed until half of the ITEM is blown to white (the meter exposed for a dark
    corner): the gain brings the item's median darkest channel to clipping, so a
    saturated magenta item goes white too instead of staying a vivid, still-graded pink.

    Measured on the item, not the frame: on a white studio sweep half the frame clips
    already, and "half the frame" would leave the item untouched (a photo no one would
    call burnt out). A car-damage close-up has no silhouette: the car fills the frame, so
    half the frame is used. None where half the item is near white already (a white
    item): it cannot be burnt further."""
    darkest = _linear(rgb).min(axis=2)
    region = item if item is not None and item.any() else np.ones(darkest.shape, bool)
    median = float(np.median(darkest[region]))
    if median >= (230 / 255) ** 2.2:
        return None
    return exposure(rgb, 1.0 / max(median, 1e-3))


def glare_centre(photo: Photo) -> tuple[float, float]:
    """Where a reflection hides the item: its deepest point (farthest from its outline,
    so the blob lands on the item whatever its shape and placement); the frame centre
    for a car close-up, whose subject fills the frame."""
    if photo.item is None or not photo.item.any():
        return 0.5, 0.5
    depth = cv2.distanceTransform(photo.item.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return (x + 0.5) / depth.shape[1], (y + 0.5) / depth.shape[0]


def add_glare(
    rgb: np.ndarray, centre: tuple[float, float] = (0.5, 0.5), radius: float = GLARE_RADIUS
) -> np.ndarray:
    """A saturated specular blob (flash or window reflection) with a soft halo."""
    h, w = rgb.shape[:2]
    r = radius * min(h, w)
    xx = (np.arange(w, dtype=np.float32) - centre[0] * w) / r
    yy = (np.arange(h, dtype=np.float32) - centre[1] * h) / r
    strength = np.clip(1.6 - 0.9 * (xx[None, :] ** 2 + yy[:, None] ** 2), 0, 1)[..., None]
    return np.clip(rgb * (1 - strength) + 255 * strength, 0, 255).astype(np.uint8)


def _angle(name: str) -> float:
    return float(hashlib.sha256(name.encode()).digest()[0] % 180)


# check -> degradation name -> function of a clean photo (None: not applicable)
DEGRADATIONS: dict[str, dict[str, Callable[[Photo], np.ndarray | None]]] = {
    "blur": {
        "gaussian": lambda p: gaussian(p.rgb),
        "motion": lambda p: motion(p.rgb, angle_deg=_angle(p.name)),
    },
    "underexposed": {"dark": lambda p: exposure(p.rgb, DARK_GAIN)},
    "overexposed": {"burnt": lambda p: burn_out(p.rgb, p.item)},
    "glare": {"glare": lambda p: add_glare(p.rgb, glare_centre(p))},
}


def cut_off_photos(count: int, held_out: bool | None = None) -> Iterator[tuple[str, bytes]]:
    """The generator's cut-off photos (item 30-50% off one edge), sizes 640-1600."""
    for i in range(count):
        size = RENDER_SIZES[i % len(RENDER_SIZES)]
        j = 4000 + i
        name = f"cutoff-{size}-{j}"
        if _wanted(name, held_out):
            yield name, jpeg(_render(j, size, background=None, bad="cut_off")[0])
