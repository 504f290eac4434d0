"""Drawing primitives on an RGBA layer with per-damage masks.

Everything is plain OpenCV on uint8 arrays at the final pixel size (anti-aliased,
sub-pixel coordinates through ``shift``), which is what keeps 10,000 photos within
minutes on two cores.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vision.synth.labels import damage_bit

Color = tuple[int, int, int]
Points = np.ndarray  # (N, 2) float

SHIFT = 4
_SCALE = 1 << SHIFT


def ipts(points: Points) -> np.ndarray:
    """Float (N,2) points -> fixed-point int32 for cv2 drawing with ``shift=SHIFT``."""
    return (
        np.round(np.asarray(points, dtype=np.float64) * _SCALE).astype(np.int32).reshape(-1, 1, 2)
    )


def shade(color: Color, factor: float) -> Color:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in color)  # type: ignore[return-value]


def mix(a: Color, b: Color, t: float) -> Color:
    return tuple(round(x * (1 - t) + y * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def rounded_rect(x0: float, y0: float, x1: float, y1: float, r: float, n: int = 6) -> Points:
    r = max(0.0, min(r, (x1 - x0) / 2, (y1 - y0) / 2))
    pts: list[tuple[float, float]] = []
    corners = (
        (x1 - r, y0 + r, -90),
        (x1 - r, y1 - r, 0),
        (x0 + r, y1 - r, 90),
        (x0 + r, y0 + r, 180),
    )
    for cx, cy, start in corners:
        for k in range(n + 1):
            a = math.radians(start + 90 * k / n)
            pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return np.array(pts)


def ellipse(
    cx: float, cy: float, ax: float, ay: float, a0: float = 0, a1: float = 360, n: int = 40
) -> Points:
    t = np.radians(np.linspace(a0, a1, n))
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], axis=1)


def blob(
    cx: float, cy: float, r: float, rng: np.random.Generator, rough: float = 0.35, n: int = 22
) -> Points:
    """Irregular closed outline (stains, holes): a circle with smoothed radial noise."""
    noise = rng.normal(0, 1, n)
    noise = (noise + np.roll(noise, 1) + np.roll(noise, -1)) / 3
    radii = r * (1 + rough * noise)
    t = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 6.3)
    sx, sy = rng.uniform(0.7, 1.3), 1.0
    return np.stack([cx + sx * radii * np.cos(t), cy + sy * radii * np.sin(t)], axis=1)


def jagged(p0: Points, p1: Points, rng: np.random.Generator, amp: float, n: int = 8) -> Points:
    """Polyline from p0 to p1 with perpendicular jitter (tears, cracks)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    t = np.linspace(0, 1, n + 1)[:, None]
    pts = p0 + (p1 - p0) * t
    d = p1 - p0
    normal = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-9)
    jit = rng.uniform(-amp, amp, n + 1)
    jit[0] = jit[-1] = 0
    return pts + normal * jit[:, None]


def poly_mask(size: int, points: Points) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    cv2.fillPoly(m, [ipts(points)], 255, cv2.LINE_AA, SHIFT)
    return m


def line_mask(size: int, points: Points, thickness: float, closed: bool = False) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    cv2.polylines(m, [ipts(points)], closed, 255, max(1, round(thickness)), cv2.LINE_AA, SHIFT)
    return m


class Layer:
    """One RGBA layer (straight alpha) plus damage masks in the same pixel grid."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rgb = np.zeros((size, size, 3), np.uint8)
        self.alpha = np.zeros((size, size), np.uint8)
        self.mask = np.zeros((size, size), np.uint8)

    def fill(self, points: Points, color: Color, alpha: int = 255) -> None:
        """Opaque (or fixed-alpha) polygon: paints colour and extends the alpha."""
        a = poly_mask(self.size, points)
        fresh = (self.alpha == 0) & (a > 0)  # no dark fringe where nothing was drawn yet
        cv2.fillPoly(self.rgb, [ipts(points)], color, cv2.LINE_AA, SHIFT)
        self.rgb[fresh] = color
        if alpha < 255:
            a = (a.astype(np.uint16) * alpha // 255).astype(np.uint8)
        np.maximum(self.alpha, a, out=self.alpha)

    def stroke(self, points: Points, color: Color, thickness: float, closed: bool = False) -> None:
        a = line_mask(self.size, points, thickness, closed)
        fresh = (self.alpha == 0) & (a > 0)
        cv2.polylines(
            self.rgb, [ipts(points)], closed, color, max(1, round(thickness)), cv2.LINE_AA, SHIFT
        )
        self.rgb[fresh] = color
        np.maximum(self.alpha, a, out=self.alpha)

    def blend(
        self, weight: np.ndarray, color: Color, opacity: float = 1.0, clip: bool = True
    ) -> None:
        """Blend ``color`` in with a uint8/float weight map, only on the item (``clip``)."""
        nz = weight if weight.dtype == np.uint8 else (weight > 0).astype(np.uint8)
        x, y, bw, bh = cv2.boundingRect(nz)  # work on the touched box only: ~10x faster
        if bw == 0 or bh == 0:
            return
        sl = (slice(y, y + bh), slice(x, x + bw))
        w = weight[sl].astype(np.float32) * (
            opacity / 255.0 if weight.dtype == np.uint8 else opacity
        )
        if clip:
            w *= self.alpha[sl].astype(np.float32) * (1.0 / 255.0)
        roi = self.rgb[sl].astype(np.float32)
        roi += (np.array(color, np.float32) - roi) * w[..., None]
        self.rgb[sl] = np.clip(roi, 0, 255).astype(np.uint8)

    def paint(self, points: Points, color: Color, opacity: float = 1.0) -> None:
        """Polygon blended onto existing pixels without changing the silhouette."""
        self.blend(poly_mask(self.size, points), color, opacity)

    def line(
        self,
        points: Points,
        color: Color,
        thickness: float,
        opacity: float = 1.0,
        closed: bool = False,
    ) -> None:
        self.blend(line_mask(self.size, points, thickness, closed), color, opacity)

    def multiply(self, factor: np.ndarray) -> None:
        """Shading: multiply RGB by a float HxW field (1 = unchanged)."""
        out = self.rgb.astype(np.float32) * factor[..., None]
        self.rgb = np.clip(out, 0, 255).astype(np.uint8)

    def erase(self, weight: np.ndarray) -> None:
        """Remove material (missing parts, holes through to what lies behind)."""
        keep = 255 - weight.astype(np.uint16)
        self.alpha = (self.alpha.astype(np.uint16) * keep // 255).astype(np.uint8)

    def mark(self, label: str, weight: np.ndarray, grow: int = 1) -> None:
        """Record ``label`` in the damage mask where ``weight`` > 0 (grown a little so thin
        scratches survive resampling)."""
        m = weight > 0
        if grow > 0:
            k = 2 * grow + 1
            m = cv2.dilate(m.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
        self.mask[m] |= damage_bit(label)


def over(top: Layer, bottom: Layer) -> Layer:
    """Alpha-composite ``top`` over ``bottom`` (masks are OR-ed)."""
    out = Layer(top.size)
    at = top.alpha.astype(np.float32)[..., None] / 255.0
    ab = bottom.alpha.astype(np.float32)[..., None] / 255.0
    a = at + ab * (1 - at)
    num = top.rgb.astype(np.float32) * at + bottom.rgb.astype(np.float32) * ab * (1 - at)
    out.rgb = np.clip(num / np.maximum(a, 1e-6), 0, 255).astype(np.uint8)
    out.alpha = np.clip(a[..., 0] * 255 + 0.5, 0, 255).astype(np.uint8)
    out.mask = top.mask | bottom.mask
    return out


def chaikin(points: Points, iterations: int = 2, closed: bool = True) -> Points:
    """Corner-cutting smoothing: a few control points -> a smooth outline."""
    pts = np.asarray(points, dtype=np.float64)
    for _ in range(iterations):
        nxt = np.roll(pts, -1, axis=0) if closed else pts[1:]
        cur = pts if closed else pts[:-1]
        q = 0.75 * cur + 0.25 * nxt
        r = 0.25 * cur + 0.75 * nxt
        mid = np.stack([q, r], axis=1).reshape(-1, 2)
        pts = mid if closed else np.vstack([pts[:1], mid, pts[-1:]])
    return pts


def soft(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Blurred copy of a uint8 mask (soft edges for stains, glare, shadows)."""
    if sigma <= 0.3:
        return mask
    return cv2.GaussianBlur(mask, (0, 0), sigma)


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinate grids (x, y) as float32."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return xs + 0.5, ys + 0.5
