"""Drawing parts of the dock simulator: the table, item sprites with a QR label, arms.

Sprites are BGR + alpha arrays composited at integer positions (clipped at the frame
border). The item picture comes from the synthetic returns generator
(``vision.synth.render_item``, numpy + OpenCV, no torch) behind :func:`item_rgba`; a
plain placeholder box is drawn when that package is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from serving.dock.output import qr_image

SKIN = ((140, 172, 214), (110, 140, 190), (90, 120, 160), (150, 185, 225))  # BGR
SLEEVES = ((90, 60, 40), (60, 60, 60), (40, 90, 140), (120, 110, 100))


@dataclass(frozen=True)
class Sprite:
    bgr: np.ndarray  # (h, w, 3) uint8
    alpha: np.ndarray  # (h, w) float32 0..1
    shadow: np.ndarray  # (h, w) float32 0..1, the blurred alpha


def table_texture(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A laminate dock table: base colour, soft blotches, fine grain, vignetting (uint8 BGR)."""
    base = np.array([150, 165, 178], np.float32) + rng.uniform(-12, 12, 3).astype(np.float32)
    low = cv2.resize(
        rng.normal(0, 1, (9, 16)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
    )
    grain = cv2.GaussianBlur(
        rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), sigmaX=6.0, sigmaY=0.8
    )
    shade = 6.0 * low + 10.0 * grain
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xs - width / 2) / (width / 2)) ** 2 + ((ys - height / 2) / (height / 2)) ** 2
    vignette = 1.0 - 0.22 * r2
    img = (base[None, None, :] + shade[..., None]) * vignette[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def placeholder_rgba(size: int, rng: np.random.Generator, grade_index: int) -> np.ndarray:
    """A plain box with more dark marks for worse grades (used without vision.synth)."""
    rgba = np.zeros((size, size, 4), np.uint8)
    colour = tuple(int(c) for c in rng.integers(40, 220, 3))
    m = size // 8
    cv2.rectangle(rgba, (m, 2 * m), (size - m, size - 2 * m), (*colour, 255), -1)
    for _ in range(grade_index * 3):
        p0 = rng.integers(2 * m, size - 2 * m, 2)
        p1 = p0 + rng.integers(-m, m, 2)
        cv2.line(rgba, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), (20, 20, 20, 255), 2)
    return rgba


def parcel_label(text: str | None, module_px: int, rng: np.random.Generator) -> np.ndarray:
    """A white shipping label (BGR) with a QR code of ``text`` and a printed line; no QR when
    ``text`` is None (an unreadable or missing label)."""
    qr = qr_image(text, module_px, border=3) if text else None
    side = qr.shape[0] if qr is not None else 25 * module_px
    pad = max(4, module_px * 2)
    h, w = side + 3 * pad + 8 * module_px, side + 2 * pad
    tone = int(rng.integers(236, 248))
    label = np.full((h, w, 3), tone, np.uint8)
    if qr is not None:
        label[pad : pad + side, pad : pad + side] = np.minimum(qr, tone)
    else:
        for y in range(pad, pad + side, max(3, module_px * 2)):
            cv2.line(label, (pad, y), (w - pad, y), (120, 120, 120), 1)
    cv2.putText(
        label,
        (text or "NO CODE")[:14],
        (pad, h - pad),
        cv2.FONT_HERSHEY_SIMPLEX,
        max(0.3, module_px * 0.14),
        (30, 30, 30),
        1,
        cv2.LINE_AA,
    )
    cv2.rectangle(label, (0, 0), (w - 1, h - 1), (200, 200, 200), 1)
    return label


def make_sprite(item_rgba: np.ndarray, label_bgr: np.ndarray | None) -> Sprite:
    """Item cut-out (RGBA, trimmed to its alpha) with the label stuck beside it, right side."""
    alpha = item_rgba[:, :, 3]
    ys, xs = np.nonzero(alpha > 8)
    item = item_rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    bgr = cv2.cvtColor(np.ascontiguousarray(item[:, :, :3]), cv2.COLOR_RGB2BGR)
    a = item[:, :, 3].astype(np.float32) / 255.0
    if label_bgr is not None:
        lh, lw = label_bgr.shape[:2]
        ih, iw = bgr.shape[:2]
        h, w = max(ih, lh), iw + lw - min(lw // 6, iw // 6)
        canvas, ca = np.zeros((h, w, 3), np.uint8), np.zeros((h, w), np.float32)
        iy = (h - ih) // 2
        canvas[iy : iy + ih, :iw] = bgr
        ca[iy : iy + ih, :iw] = a
        ly, lx = (h - lh) // 2, w - lw
        canvas[ly : ly + lh, lx:] = label_bgr
        ca[ly : ly + lh, lx:] = 1.0
        bgr, a = canvas, ca
    pad = max(4, bgr.shape[0] // 16)
    bgr = cv2.copyMakeBorder(bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    a = np.pad(a, pad)
    shadow = cv2.GaussianBlur(a, (0, 0), sigmaX=pad / 2.0)
    return Sprite(bgr, a, shadow)


Slices = tuple[slice, slice, slice, slice]


def _clip(frame: np.ndarray, x: int, y: int, h: int, w: int) -> Slices | None:
    fh, fw = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(fw, x + w), min(fh, y + h)
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1), slice(y0 - y, y1 - y), slice(x0 - x, x1 - x)


def paste(frame: np.ndarray, sprite: Sprite, x: int, y: int, shadow_offset: int = 6) -> None:
    """Alpha-composite a sprite (and its soft shadow) with its top-left corner at (x, y)."""
    h, w = sprite.alpha.shape
    s = _clip(frame, x + shadow_offset, y + shadow_offset, h, w)
    if s is not None:
        fy, fx, sy, sx = s
        region = frame[fy, fx].astype(np.float32)
        frame[fy, fx] = (region * (1.0 - 0.45 * sprite.shadow[sy, sx, None])).astype(np.uint8)
    s = _clip(frame, x, y, h, w)
    if s is not None:
        fy, fx, sy, sx = s
        a = sprite.alpha[sy, sx, None]
        region = frame[fy, fx].astype(np.float32)
        frame[fy, fx] = (region * (1.0 - a) + sprite.bgr[sy, sx].astype(np.float32) * a).astype(
            np.uint8
        )


EDGES = {"left": (1.0, 0.0), "right": (-1.0, 0.0), "bottom": (0.0, -1.0), "top": (0.0, 1.0)}


def draw_arm(
    frame: np.ndarray,
    hand: tuple[float, float],
    edge: str,
    width: float,
    skin: tuple[int, int, int],
    sleeve: tuple[int, int, int],
) -> None:
    """An arm reaching in from ``edge`` with the hand (palm + fingers) at ``hand``."""
    dx, dy = EDGES[edge]
    d, n = np.array([dx, dy]), np.array([-dy, dx])
    h = np.array(hand, np.float64)
    reach = 2.0 * max(frame.shape[:2])
    wrist = h - d * 0.9 * width
    elbow = wrist - d * reach

    def quad(a: np.ndarray, b: np.ndarray, half: float) -> np.ndarray:
        return np.array([a + n * half, b + n * half, b - n * half, a - n * half]).astype(np.int32)

    shadow = np.array([8, 10])
    for offset, dim in ((shadow, 0.55), (np.zeros(2), 1.0)):
        shade = tuple(int(c * dim) for c in skin)
        sl = tuple(int(c * dim) for c in sleeve)
        cv2.fillConvexPoly(
            frame,
            quad(elbow + offset, wrist - d * 0.6 * width + offset, 0.55 * width),
            sl,
            cv2.LINE_AA,
        )
        cv2.fillConvexPoly(
            frame,
            quad(wrist - d * 0.7 * width + offset, wrist + offset, 0.42 * width),
            shade,
            cv2.LINE_AA,
        )
        palm = wrist + d * 0.45 * width + offset
        cv2.ellipse(
            frame,
            (int(palm[0]), int(palm[1])),
            (int(0.5 * width), int(0.5 * width)),
            0,
            0,
            360,
            shade,
            -1,
            cv2.LINE_AA,
        )
        for k in (-1.5, -0.5, 0.5, 1.5):
            base = palm + n * k * 0.22 * width
            tip = base + d * 0.75 * width
            cv2.line(
                frame,
                (int(base[0]), int(base[1])),
                (int(tip[0]), int(tip[1])),
                shade,
                max(2, int(0.17 * width)),
                cv2.LINE_AA,
            )
