"""Photographing a rendered item: background, placement (perspective), shadow, lighting,
camera blur and sensor noise, and the deliberately bad photos for the quality gate."""

from __future__ import annotations

import math
import zlib

import cv2
import numpy as np

from vision.synth.catalog import SkuSpec, hsv
from vision.synth.labels import BAD_KINDS
from vision.synth.render import RenderedItem, render_item
from vision.synth.state import ItemState

BACKGROUNDS: tuple[str, ...] = ("wood", "fabric", "floor", "plain", "tiled")


def _noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    small = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def make_background(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A float32 (size, size, 3) RGB surface in 0..255."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    if rng.random() < 0.5:
        xs, ys = ys, xs
    if kind == "wood":
        base = np.array(
            hsv(rng.uniform(0.04, 0.1), rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.8)), np.float32
        )
        pw = size * rng.uniform(0.18, 0.35)
        plank = np.floor(ys / pw)
        tone = 1 + 0.12 * np.sin(plank * 12.9898 + rng.uniform(0, 6))
        phase = (ys % pw) / pw * rng.uniform(3, 7) + 0.8 * _noise(rng, size, 6) + xs / size * 0.5
        grain = 1 + 0.07 * np.sin(2 * np.pi * phase) + 0.05 * (_noise(rng, size, 40) - 0.5)
        seam = 1 - 0.35 * (np.abs(ys % pw) < max(1.0, size / 256))
        f = tone * grain * seam
    elif kind == "fabric":
        base = np.array(
            hsv(rng.random(), rng.uniform(0.15, 0.6), rng.uniform(0.35, 0.85)), np.float32
        )
        period = rng.uniform(2.5, 4.0) * size / 256
        weave = 1 + 0.06 * np.sin(2 * np.pi * xs / period) * np.sin(2 * np.pi * ys / period)
        f = (
            weave
            * (1 + 0.22 * (_noise(rng, size, 4) - 0.5))
            * (1 + 0.05 * (_noise(rng, size, 64) - 0.5))
        )
    elif kind == "floor":
        base = np.array(
            hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.15), rng.uniform(0.4, 0.8)), np.float32
        )
        f = (
            1
            + 0.18 * (_noise(rng, size, 5) - 0.5)
            + 0.1 * (_noise(rng, size, 24) - 0.5)
            + 0.08 * (rng.random((size, size)).astype(np.float32) - 0.5)
        )
    elif kind == "tiled":
        base = np.array(
            hsv(rng.random(), rng.uniform(0.0, 0.4), rng.uniform(0.55, 0.95)), np.float32
        )
        ts = size * rng.uniform(0.14, 0.3)
        tile = np.floor(xs / ts) * 7.1 + np.floor(ys / ts) * 3.3
        grout = (np.minimum(xs % ts, ys % ts) < max(1.5, size / 128)).astype(np.float32)
        f = (1 + 0.06 * np.sin(tile * 5.7)) * (1 - grout * rng.uniform(0.2, 0.45))
        f = f * (1 + 0.04 * (_noise(rng, size, 16) - 0.5))
    else:  # plain
        base = np.array(
            hsv(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.55, 0.97)), np.float32
        )
        f = 1 + 0.08 * (_noise(rng, size, 3) - 0.5)
    return np.clip(base[None, None, :] * f[..., None], 0, 255).astype(np.float32)


def _placement(
    item: RenderedItem, size: int, rng: np.random.Generator, bad: str | None, upright: bool
) -> np.ndarray:
    """Homography from the item canvas to the photo: scale, rotation, mild perspective,
    position (fully in frame unless ``bad`` says otherwise)."""
    x0, y0, x1, y1 = item.bbox
    src = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    frac = rng.uniform(0.14, 0.22) if bad == "small" else rng.uniform(0.6, 0.86)
    if bad == "cut_off":
        frac = rng.uniform(0.6, 0.85)
    scale = frac * size / max(x1 - x0, y1 - y0)
    angle = math.radians(rng.uniform(-12, 12) if upright else rng.uniform(-25, 25))
    c, s = math.cos(angle), math.sin(angle)
    ctr = src.mean(axis=0)
    dst = (src - ctr) * scale @ np.array([[c, s], [-s, c]], np.float32)
    dst += rng.uniform(-0.05, 0.05, dst.shape).astype(np.float32) * frac * size
    lo, hi = dst.min(axis=0), dst.max(axis=0)
    span = hi - lo
    margin = 0.03 * size
    if np.any(span > size - 2 * margin):
        dst *= float((size - 2 * margin) / span.max()) * 0.999
        lo, hi = dst.min(axis=0), dst.max(axis=0)
        span = hi - lo
    pos = np.array(
        [rng.uniform(margin - lo[i], max(margin - lo[i], size - margin - hi[i])) for i in range(2)],
        np.float32,
    )
    if bad == "cut_off":
        axis = int(rng.integers(0, 2))
        out = rng.uniform(0.3, 0.5) * span[axis]
        pos[axis] = (-lo[axis] - out) if rng.random() < 0.5 else (size - hi[axis] + out)
    dst = (dst + pos).astype(np.float32)
    return cv2.getPerspectiveTransform(src, dst)


def _composite(
    item: RenderedItem, bg: np.ndarray, H: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    size = bg.shape[0]
    alpha = item.rgba[..., 3].astype(np.float32) / 255
    prem = item.rgba[..., :3].astype(np.float32) * alpha[..., None]
    flags = cv2.INTER_LINEAR
    wp = cv2.warpPerspective(prem, H, (size, size), flags=flags, borderValue=0)
    wa = cv2.warpPerspective(alpha, H, (size, size), flags=flags, borderValue=0)
    wm = cv2.warpPerspective(item.mask, H, (size, size), flags=cv2.INTER_NEAREST, borderValue=0)
    a = rng.uniform(0, 2 * math.pi)
    shift = np.array(
        [
            [1, 0, math.cos(a) * size * rng.uniform(0.01, 0.04)],
            [0, 1, math.sin(a) * size * rng.uniform(0.01, 0.04)],
            [0, 0, 1],
        ]
    )
    sh = cv2.warpPerspective(alpha, shift @ H, (size, size), flags=flags, borderValue=0)
    sh = cv2.GaussianBlur(sh, (0, 0), size * rng.uniform(0.008, 0.03))
    bg = bg * (1 - rng.uniform(0.25, 0.55) * sh)[..., None]
    out = bg * (1 - wa[..., None]) + wp
    return out, wm


def _lighting(img: np.ndarray, rng: np.random.Generator, bad: str | None) -> np.ndarray:
    size = img.shape[0]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    a = rng.uniform(0, 2 * math.pi)
    grad = 1 + rng.uniform(0, 0.45) * (xs * math.cos(a) + ys * math.sin(a))
    vign = 1 - rng.uniform(0, 0.3) * (xs**2 + ys**2) * 2
    temp = rng.uniform(-1, 1)
    gains = np.array([1 + 0.08 * temp, 1.0, 1 - 0.1 * temp], np.float32)
    bright = rng.uniform(0.82, 1.12)
    out = img * (grad * vign * bright)[..., None] * gains
    if bad in ("dark", "bright"):
        # Exposure set by the resulting mean level, so every bad photo is clearly bad
        # (whatever the scene brightness) while keeping some visible structure.
        mean = max(float(out.mean()), 1.0)
        if bad == "dark":
            out = out * (rng.uniform(12.0, 32.0) / mean)
        else:
            lift = rng.uniform(40.0, 80.0)
            out = out * ((rng.uniform(240.0, 255.0) - lift) / mean) + lift
    return out


def _camera(img: np.ndarray, rng: np.random.Generator, bad: str | None) -> np.ndarray:
    size = img.shape[0]
    k = size / 256
    if bad == "blur":
        if rng.random() < 0.5:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(3.0, 6.0) * k)
        else:
            n = max(3, int(rng.uniform(13, 25) * k)) | 1
            kernel = np.zeros((n, n), np.float32)
            kernel[n // 2, :] = 1.0 / n
            rot = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), rng.uniform(0, 180), 1.0)
            kernel = np.asarray(cv2.warpAffine(kernel, rot, (n, n)), np.float32)
            img = cv2.filter2D(img, -1, kernel / max(float(kernel.sum()), 1e-6))
    else:
        sigma = rng.uniform(0.0, 0.7) * k
        if sigma > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), sigma)
    noise = rng.uniform(1.0, 3.5)
    if bad == "dark":
        noise *= 2.0  # high ISO
    elif bad == "blur":
        noise = rng.uniform(0.5, 1.5)  # blur is what is wrong here, not grain
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def render_photo(
    sku: SkuSpec,
    state: ItemState,
    rng: np.random.Generator,
    size: int,
    *,
    background: str | np.ndarray | None = None,
    bad: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A photo of the item: (RGB uint8 HxWx3, damage-mask bitfield uint8 HxW).

    ``background`` is a kind from BACKGROUNDS, an RGB array of shape (size, size, 3), or
    None for a random kind. ``bad`` is one of BAD_KINDS or None.
    """
    if bad is not None and bad not in BAD_KINDS:
        raise ValueError(f"unknown bad-photo kind {bad!r}; expected one of {BAD_KINDS}")
    if isinstance(background, np.ndarray):
        bg = background.astype(np.float32)
    else:
        kind = background or BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))]
        bg = make_background(kind, size, rng)
    frac = 0.2 if bad == "small" else 0.72
    canvas = max(32, round(frac * size / 0.86))
    item = render_item(sku, state, rng, canvas)
    H = _placement(item, size, rng, bad, upright=sku.category in ("mug", "shoe", "box"))
    img, mask = _composite(item, bg, H, rng)
    img = _lighting(img, rng, bad)
    return _camera(img, rng, bad), mask


def render_reference(sku: SkuSpec, size: int) -> np.ndarray:
    """Clean catalog photo: new, undamaged, unwrapped, frontal, on a plain light backdrop."""
    state = ItemState(
        packaging="sealed" if sku.category == "box" else "opened", damage=(), detail_seed=0
    )
    rng = np.random.default_rng(zlib.crc32(sku.sku.encode()))
    item = render_item(sku, state, rng, round(size * 0.8 / 0.86))
    x0, y0, x1, y1 = item.bbox
    src = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    scale = 0.8 * size / max(x1 - x0, y1 - y0)
    dst = (src - src.mean(axis=0)) * scale + size / 2
    H = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    ys = np.mgrid[0:size, 0:size][0].astype(np.float32) / size
    bg = np.repeat((246 - 14 * ys)[..., None], 3, axis=2)
    img, _ = _composite(item, bg, H, rng)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)
