"""Mug, side view: tapered glazed body with cylinder shading, rim, handle, print."""

from __future__ import annotations

import math

import cv2
import numpy as np

from vision.synth import damage as dmg
from vision.synth.canvas import (
    Layer,
    chaikin,
    ellipse,
    grid,
    jagged,
    line_mask,
    poly_mask,
    shade,
    soft,
)
from vision.synth.catalog import SkuSpec
from vision.synth.items.base import Geometry
from vision.synth.items.motif import motif
from vision.synth.state import ItemState

CERAMIC = (236, 232, 222)


def draw(
    layer: Layer,
    sku: SkuSpec,
    rect: tuple[float, float, float, float],
    state: ItemState,
    view: np.random.Generator,
) -> Geometry:
    del view
    x0, y0, x1, y1 = rect
    w = x1 - x0
    u = layer.size / 256
    bw = w / 1.35
    cx = x0 + bw / 2
    tw = bw / 2
    bot = tw * {"tapered": 0.74, "wide": 0.93, "tall": 0.9}.get(sku.style, 0.88)
    e = bw * 0.1
    yt, yb = y0 + e, y1 - e * 0.9
    # handle ring first; the body covers its left half
    hx, hy = cx + tw * 0.96, yt + (yb - yt) * 0.48
    hax, hay = bw * 0.3, (yb - yt) * 0.3
    handle = ellipse(hx, hy, hax, hay, n=48)
    layer.fill(handle, shade(sku.primary, 0.85))
    layer.erase(poly_mask(layer.size, ellipse(hx, hy, hax * 0.55, hay * 0.58, n=48)))
    body = np.vstack(
        [
            [[cx - tw, yt], [cx - bot, yb]],
            ellipse(cx, yb, bot, e * 0.9, 180, 0, n=24),
            [[cx + tw, yt]],
            ellipse(cx, yt, tw, e, 0, -180, n=24)[1:],
        ]
    )
    bmask = poly_mask(layer.size, body)
    layer.fill(body, sku.primary)
    _pattern(layer, sku, bmask, (cx, tw, yt, yb))
    motif(
        layer,
        sku.motif,
        cx - tw * 0.05,
        yt + (yb - yt) * 0.42,
        bw * 0.17,
        sku.accent if sku.pattern != "two_tone" else sku.secondary,
        clip=bmask,
    )
    xs, _ = grid(layer.size)
    t = np.clip((xs - cx) / tw, -1, 1)
    shading = (
        0.7 + 0.38 * np.cos(t * math.pi / 2 * 0.95) + 0.25 * np.exp(-((t + 0.45) ** 2) / 0.015)
    )
    field = 1 + (shading - 1) * (bmask.astype(np.float32) / 255)
    layer.multiply(field.astype(np.float32))
    rim = ellipse(cx, yt, tw, e, n=48)
    layer.fill(rim, shade(sku.primary, 1.12))
    inner = ellipse(cx, yt + e * 0.08, tw * 0.9, e * 0.78, n=48)
    inside = CERAMIC if sku.variant < 0.5 else shade(sku.primary, 0.8)
    layer.paint(inner, shade(inside, 0.8))
    layer.paint(
        ellipse(cx, yt + e * 0.3, tw * 0.8, e * 0.5, 0, -180, n=24), shade(inside, 0.55), 0.6
    )
    layer.line(ellipse(cx, yb, bot, e * 0.9, 0, 180, n=24), shade(sku.primary, 0.55), 1.5 * u)
    hmask = dmg.clip(poly_mask(layer.size, handle), 255 - bmask)
    return Geometry(
        rect=rect,
        extent=bw,
        regions={"body": bmask, "handle": hmask},
        shapes={"cx": cx, "tw": tw, "yt": yt, "yb": yb, "e": e, "handle": (hx, hy, hax, hay)},
    )


def _pattern(
    layer: Layer, sku: SkuSpec, bmask: np.ndarray, dims: tuple[float, float, float, float]
) -> None:
    cx, tw, yt, yb = dims
    h = yb - yt
    s = layer.size
    if sku.pattern == "band":
        yc = yt + h * (0.6 + 0.15 * sku.variant)
        band = np.array(
            [
                [cx - 2 * tw, yc],
                [cx + 2 * tw, yc],
                [cx + 2 * tw, yc + h * 0.14],
                [cx - 2 * tw, yc + h * 0.14],
            ]
        )
        layer.blend(dmg.clip(poly_mask(s, band), bmask), sku.secondary)
    elif sku.pattern == "dots":
        m = np.zeros((s, s), np.uint8)
        r = tw * 0.07
        for i in range(-4, 5):
            for j in range(7):
                x = cx + i * tw * 0.26 + (j % 2) * tw * 0.13
                y = yt + h * (0.12 + j * 0.14)
                m = np.maximum(m, poly_mask(s, ellipse(x, y, r * 0.8, r, n=10)))
        layer.blend(dmg.clip(m, bmask), sku.secondary)
    elif sku.pattern == "two_tone":
        yc = yt + h * (0.55 + 0.1 * sku.variant)
        xsw = np.linspace(cx - 2 * tw, cx + 2 * tw, 24)
        edge = np.stack([xsw, yc + np.sin(xsw / tw * 6) * h * 0.02], axis=1)
        dip = np.vstack([edge, [[cx + 2 * tw, yb + h], [cx - 2 * tw, yb + h]]])
        layer.blend(dmg.clip(poly_mask(s, dip), bmask), sku.secondary)
    elif sku.pattern == "stripes":
        m = np.zeros((s, s), np.uint8)
        for k in range(3):
            yc = yt + h * (0.18 + 0.08 * k)
            m = np.maximum(
                m,
                poly_mask(
                    s,
                    np.array(
                        [
                            [cx - 2 * tw, yc],
                            [cx + 2 * tw, yc],
                            [cx + 2 * tw, yc + h * 0.035],
                            [cx - 2 * tw, yc + h * 0.035],
                        ]
                    ),
                ),
            )
        layer.blend(dmg.clip(m, bmask), sku.secondary)


def damage(
    layer: Layer, geom: Geometry, sku: SkuSpec, label: str, sev: float, rng: np.random.Generator
) -> None:
    g = geom.shapes
    body = geom.regions["body"]
    u = layer.size / 256
    if label == "scratch":
        color = dmg.contrast_color(layer, body, (240, 240, 235), (70, 66, 60))
        dmg.scratches(layer, body, sev, rng, color, geom.extent)
    elif label == "stain":
        x = g["cx"] + rng.uniform(-0.5, 0.4) * g["tw"]
        top = np.array([x, g["yt"] + g["e"]])
        length = (g["yb"] - g["yt"]) * (0.25 + 0.6 * sev)
        half = np.array([g["tw"] * (0.04 + 0.06 * sev), 0.0])
        bottom = top + np.array([0.0, length])
        down = jagged(top, bottom, rng, g["tw"] * 0.03, 6) - half
        up = jagged(bottom, top, rng, g["tw"] * 0.03, 6) + half
        drip = np.vstack([down, up])
        m = dmg.clip(soft(poly_mask(layer.size, chaikin(drip, 1)), u), body)
        layer.blend(m, (105, 62, 32), 0.7)
        layer.mark("stain", m)
        center = dmg.sample_point(body, rng, inset=int(geom.extent * 0.15))
        dmg.stain(layer, body, center, sev * 0.8, rng, (110, 70, 38), geom.extent)
    elif label == "crack":
        for _ in range(1 + int(sev > 0.6) + int(sev > 0.85)):
            x = g["cx"] + rng.uniform(-0.7, 0.6) * g["tw"]
            start = np.array([x, g["yt"] + g["e"] * 0.8])
            end = start + np.array(
                [rng.uniform(-0.3, 0.3) * g["tw"], (g["yb"] - g["yt"]) * (0.35 + 0.55 * sev)]
            )
            path = jagged(start, end, rng, g["tw"] * 0.12, 9)
            w = dmg.clip(line_mask(layer.size, path, max(1.0, u * (1.2 + sev))), body)
            for k in (3, 6):
                if rng.random() < 0.7:
                    q = path[k] + [rng.choice([-1, 1]) * g["tw"] * 0.3, g["tw"] * 0.25]
                    w = np.maximum(
                        w,
                        dmg.clip(line_mask(layer.size, jagged(path[k], q, rng, 2 * u, 4), u), body),
                    )
            layer.blend(np.roll(w, 1, axis=1), (250, 250, 245), 0.5)
            layer.blend(w, (35, 28, 24), 0.95)
            layer.mark("crack", w, grow=max(1, round(u)))
    elif label == "missing_part":
        if sev >= 0.6 or rng.random() < 0.4:
            _handle_off(layer, geom)
        else:
            _rim_chip(layer, geom, sev, rng)
    del sku


def _handle_off(layer: Layer, geom: Geometry) -> None:
    """Handle snapped off: only two stubs with raw ceramic ends remain."""
    _, hy, hax, hay = geom.shapes["handle"]
    edge = geom.shapes["cx"] + geom.shapes["tw"]
    u = layer.size / 256
    stub = hax * 0.28
    region = cv2.dilate(
        (geom.regions["handle"] > 0).astype(np.uint8) * 255, np.ones((5, 5), np.uint8)
    )
    region[:, : int(edge + stub)] = 0
    layer.erase(region)
    for sgn in (-1, 1):
        y = hy + sgn * hay * 0.78
        layer.paint(ellipse(edge + stub, y, 2.2 * u, hay * 0.2, n=12), CERAMIC, 0.95)
    layer.mark(
        "missing_part",
        np.maximum(
            region,
            dmg.clip(
                line_mask(
                    layer.size, np.array([[edge + stub, hy - hay], [edge + stub, hy + hay]]), 5 * u
                ),
                geom.regions["handle"],
            ),
        ),
    )


def _rim_chip(layer: Layer, geom: Geometry, sev: float, rng: np.random.Generator) -> None:
    g = geom.shapes
    u = layer.size / 256
    x = g["cx"] + rng.uniform(-0.6, 0.5) * g["tw"]
    wd = g["tw"] * (0.3 + 0.5 * sev)
    dp = (g["yb"] - g["yt"]) * (0.12 + 0.25 * sev)
    top = g["yt"] - g["e"] * 1.5
    notch = np.vstack(
        [
            [[x - wd / 2, top]],
            jagged(np.array([x - wd / 2, g["yt"]]), np.array([x, g["yt"] + dp]), rng, wd * 0.1, 4),
            jagged(np.array([x, g["yt"] + dp]), np.array([x + wd / 2, g["yt"]]), rng, wd * 0.1, 4),
            [[x + wd / 2, top]],
        ]
    )
    cut = poly_mask(layer.size, notch)
    layer.erase(cut)
    exposed = dmg.clip(line_mask(layer.size, notch, 3 * u, closed=True), layer.alpha)
    layer.blend(exposed, CERAMIC, 0.95)
    layer.mark(
        "missing_part",
        np.maximum(
            dmg.clip(
                cut,
                poly_mask(
                    layer.size,
                    ellipse(
                        g["cx"],
                        (g["yt"] + g["yb"]) / 2,
                        g["tw"] * 1.05,
                        (g["yb"] - g["yt"]) / 2 + g["e"] * 1.2,
                    ),
                ),
            ),
            exposed,
        ),
    )
