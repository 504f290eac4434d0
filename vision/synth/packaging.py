"""Packaging layers: the seal sticker, shrink-wrap (sealed items) and the open retail box
("tray") shown behind an item, intact or torn/crushed (``packaging_damage``).

What makes ``A_new`` visibly different from ``B_like_new``: a sealed item sits under a
glossy shrink-wrap with crinkled edges and a red/green SEALED sticker; an opened item
has none of that.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vision.synth.canvas import (
    Layer,
    blob,
    jagged,
    line_mask,
    mix,
    poly_mask,
    rounded_rect,
    shade,
    soft,
)

STICKERS = ((206, 32, 38), (28, 140, 72), (232, 176, 24))
TRAY_COLORS = ((236, 234, 228), (198, 154, 106), (40, 44, 52))


def seal_sticker(
    layer: Layer, x: float, y: float, r: float, color: tuple[int, int, int] = STICKERS[0]
) -> None:
    """'SEALED' label centred at (x, y), ``r`` = half its height: coloured rounded
    rectangle, white border, white text sized to fit."""
    u = layer.size / 256
    hw, hh = 1.45 * r, 0.62 * r
    layer.fill(rounded_rect(x - hw, y - hh, x + hw, y + hh, 0.3 * r), color)
    layer.line(
        rounded_rect(x - hw * 0.88, y - hh * 0.72, x + hw * 0.88, y + hh * 0.72, 0.2 * r),
        (255, 255, 255),
        max(1.0, 0.7 * u),
        closed=True,
    )
    (tw, _), _ = cv2.getTextSize("SEALED", cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)
    scale = 1.5 * hw / tw
    (tw, th), _ = cv2.getTextSize("SEALED", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(
        layer.rgb,
        "SEALED",
        (round(x - tw / 2), round(y + th / 2)),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        max(1, round(scale * 2.2)),
        cv2.LINE_AA,
    )


def shrink_wrap(
    size: int,
    rect: tuple[float, float, float, float],
    view: np.random.Generator,
    sticker_color: tuple[int, int, int],
) -> Layer:
    """A glossy plastic film over the item: haze, bright crinkled rim, specular streaks,
    heat-seal seam, and a seal sticker on a corner."""
    wrap = Layer(size)
    u = size / 256
    x0, y0, x1, y1 = rect
    m = size * 0.035
    outline = rounded_rect(x0 - m, y0 - m, x1 + m, y1 + m, size * 0.05, n=5)
    outline = outline + view.normal(0, 0.6 * u, outline.shape)
    wrap.fill(outline, (236, 242, 248), alpha=70)
    rim = line_mask(size, outline, 2.2 * u, closed=True)
    wrap.rgb[rim > 0] = (250, 252, 255)
    np.maximum(wrap.alpha, (rim.astype(np.uint16) * 190 // 255).astype(np.uint8), out=wrap.alpha)
    inside = poly_mask(size, outline)
    for _ in range(int(view.integers(2, 4))):  # specular streaks
        a = view.uniform(0.6, 1.0)
        c = np.array([view.uniform(x0, x1), view.uniform(y0, y1)])
        d = np.array([math.cos(a), -math.sin(a)]) * (x1 - x0 + y1 - y0)
        n = np.array([math.sin(a), math.cos(a)]) * view.uniform(0.02, 0.06) * (x1 - x0)
        band = soft(poly_mask(size, np.array([c - d - n, c + d - n, c + d + n, c - d + n])), 2 * u)
        band = (band.astype(np.uint16) * inside // 255).astype(np.uint8)
        a_band = (band.astype(np.float32) * view.uniform(0.45, 0.7)).astype(np.uint8)
        np.maximum(wrap.alpha, a_band, out=wrap.alpha)
        wrap.rgb[band > 0] = (252, 253, 255)
    for _ in range(10):  # crinkles near the edge
        t = int(view.integers(0, len(outline)))
        p = outline[t]
        q = p + view.normal(0, 4 * u, 2)
        cv2.line(
            wrap.rgb,
            tuple(np.round(p).astype(int)),
            tuple(np.round(q).astype(int)),
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        cv2.line(
            wrap.alpha,
            tuple(np.round(p).astype(int)),
            tuple(np.round(q).astype(int)),
            200,
            1,
            cv2.LINE_AA,
        )
    seam_y = y1 + m * 0.45
    for k in range(int((x1 - x0) / (3 * u))):  # crimped heat seal
        x = x0 + k * 3 * u
        seg = np.array([[x, seam_y - 1.5 * u], [x + 1.5 * u, seam_y + 1.5 * u]])
        cv2.line(
            wrap.alpha,
            tuple(np.round(seg[0]).astype(int)),
            tuple(np.round(seg[1]).astype(int)),
            170,
            1,
        )
        cv2.line(
            wrap.rgb,
            tuple(np.round(seg[0]).astype(int)),
            tuple(np.round(seg[1]).astype(int)),
            (250, 250, 250),
            1,
        )
    corner = int(view.integers(0, 4))
    sx, sy = (x0, x1, x1, x0)[corner], (y0, y0, y1, y1)[corner]
    r = max(0.075 * size, 6 * u)
    seal_sticker(
        wrap,
        sx + (r if corner in (0, 3) else -r) * 0.9,
        sy + (r if corner < 2 else -r) * 0.4,
        r,
        sticker_color,
    )
    return wrap


def tray(
    size: int,
    rect: tuple[float, float, float, float],
    rng: np.random.Generator,
    damage: float | None,
) -> Layer:
    """An open retail box around/behind the item; torn and crushed when ``damage`` is a
    severity (marked as ``packaging_damage``)."""
    layer = Layer(size)
    u = size / 256
    x0, y0, x1, y1 = rect
    m = size * 0.085
    ox0, oy0, ox1, oy1 = x0 - m, y0 - m, x1 + m, y1 + m
    t = size * 0.055
    color = TRAY_COLORS[int(rng.integers(0, 3))]
    fl = size * 0.065
    flap_c = mix(color, (255, 255, 255), 0.25) if color != TRAY_COLORS[2] else (96, 100, 110)
    if rng.random() < 0.5:  # opened flaps folded outward on two opposite sides
        flaps = [
            np.array(
                [[ox0, oy0], [ox0 - fl, oy0 + fl * 0.4], [ox0 - fl, oy1 - fl * 0.4], [ox0, oy1]]
            ),
            np.array(
                [[ox1, oy0], [ox1 + fl, oy0 + fl * 0.4], [ox1 + fl, oy1 - fl * 0.4], [ox1, oy1]]
            ),
        ]
    else:
        flaps = [
            np.array(
                [[ox0, oy0], [ox0 + fl * 0.4, oy0 - fl], [ox1 - fl * 0.4, oy0 - fl], [ox1, oy0]]
            ),
            np.array(
                [[ox0, oy1], [ox0 + fl * 0.4, oy1 + fl], [ox1 - fl * 0.4, oy1 + fl], [ox1, oy1]]
            ),
        ]
    for flap_poly in flaps:
        layer.fill(flap_poly, flap_c)
        layer.line(flap_poly, shade(flap_c, 0.6), u, 0.8, closed=True)
    layer.fill(np.array([[ox0, oy0], [ox1, oy0], [ox1, oy1], [ox0, oy1]]), shade(color, 0.72))
    ix0, iy0, ix1, iy1 = ox0 + t, oy0 + t, ox1 - t, oy1 - t
    walls = (
        (np.array([[ox0, oy0], [ox1, oy0], [ix1, iy0], [ix0, iy0]]), 0.86),
        (np.array([[ox1, oy0], [ox1, oy1], [ix1, iy1], [ix1, iy0]]), 0.95),
        (np.array([[ox0, oy1], [ox1, oy1], [ix1, iy1], [ix0, iy1]]), 1.08),
        (np.array([[ox0, oy0], [ox0, oy1], [ix0, iy1], [ix0, iy0]]), 0.8),
    )
    for poly, f in walls:
        layer.fill(poly, shade(color, f))
        layer.line(poly, shade(color, 0.6), u, 0.7, closed=True)
    if damage is None:
        return layer
    tears = 1 + int(damage > 0.55) + int(damage > 0.85)
    edges = rng.permutation(4)[:tears]
    mark = np.zeros((size, size), np.uint8)
    for e in edges:
        (a, b), s = (
            [
                ((ox0, oy0), (ox1, oy0)),
                ((ox1, oy0), (ox1, oy1)),
                ((ox0, oy1), (ox1, oy1)),
                ((ox0, oy0), (ox0, oy1)),
            ][int(e)],
            rng.uniform(0.2, 0.7),
        )
        pa, pb = np.array(a), np.array(b)
        span = (0.22 + 0.45 * damage) * np.hypot(*(pb - pa))
        start = pa + (pb - pa) * s
        end = start + (pb - pa) / np.hypot(*(pb - pa)) * span
        inward = np.array([(ox0 + ox1) / 2, (oy0 + oy1) / 2]) - (start + end) / 2
        inward = inward / np.hypot(*inward) * t * (1.0 + 1.2 * damage)
        edge = jagged(start + inward, end + inward, rng, t * 0.35, 9)
        notch = np.vstack([[start - inward * 0.2], edge, [end - inward * 0.2]])
        cut = poly_mask(size, notch)
        layer.erase(cut)
        layer.line(edge, mix(color, (255, 240, 210), 0.5), 2.4 * u)
        flap = np.array([edge[2], edge[5], edge[4] - inward * 0.9 + rng.normal(0, t * 0.2, 2)])
        layer.fill(flap, shade(color, 1.15))
        layer.line(flap, shade(color, 0.5), u, closed=True)
        mark = np.maximum(
            mark, np.maximum(cut, np.maximum(poly_mask(size, flap), line_mask(size, edge, 3 * u)))
        )
    corner = np.array([[ox0, oy0], [ox1, oy0], [ox1, oy1], [ox0, oy1]][int(rng.integers(0, 4))])
    crush = blob(corner[0], corner[1], t * (1.2 + 1.5 * damage), rng, rough=0.2)
    cm = poly_mask(size, crush)
    layer.blend(cm, (30, 22, 14), 0.45)
    for _ in range(4):
        q = corner + rng.normal(0, t * 1.2, 2)
        layer.line(jagged(corner, q, rng, t * 0.2, 4), (30, 22, 14), 1.3 * u, 0.8)
    mark = np.maximum(mark, (cm.astype(np.uint16) * layer.alpha // 255).astype(np.uint8))
    layer.mark("packaging_damage", mark)
    return layer
