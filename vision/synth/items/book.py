"""Book, front cover: page block, spine, illustrated cover, title and author blocks."""

from __future__ import annotations

import numpy as np

from vision.synth import damage as dmg
from vision.synth.canvas import (
    Layer,
    ellipse,
    jagged,
    line_mask,
    mix,
    poly_mask,
    rounded_rect,
    shade,
)
from vision.synth.catalog import SkuSpec
from vision.synth.items.base import Geometry
from vision.synth.state import ItemState

PAGES = (242, 236, 220)


def draw(
    layer: Layer,
    sku: SkuSpec,
    rect: tuple[float, float, float, float],
    state: ItemState,
    view: np.random.Generator,
) -> Geometry:
    del state, view
    x0, y0, x1, y1 = rect
    u = layer.size / 256
    pd = (x1 - x0) * 0.035
    cx0, cy0, cx1, cy1 = x0, y0, x1 - pd, y1 - pd
    cw, ch = cx1 - cx0, cy1 - cy0
    layer.fill(rounded_rect(x0 + pd, y0 + pd, x1, y1, u), PAGES)
    for k in range(1, 4):
        t = k * pd / 4
        layer.line(np.array([[cx1 + t, cy0 + pd], [cx1 + t, cy1 + t]]), (200, 192, 175), 0.8 * u)
        layer.line(np.array([[cx0 + pd, cy1 + t], [cx1 + t, cy1 + t]]), (200, 192, 175), 0.8 * u)
    hard = sku.style == "hardcover"
    cover = rounded_rect(cx0, cy0, cx1, cy1, 2 * u if hard else 0.5 * u)
    layer.fill(cover, sku.primary)
    cmask = poly_mask(layer.size, cover)
    _art(layer, sku, (cx0, cy0, cx1, cy1), cmask)
    spine_w = cw * (0.07 if hard else 0.025)
    layer.paint(
        np.array([[cx0, cy0], [cx0 + spine_w, cy0], [cx0 + spine_w, cy1], [cx0, cy1]]),
        shade(sku.primary, 0.65),
        0.8,
    )
    if hard:
        layer.line(
            np.array([[cx0 + spine_w * 1.3, cy0], [cx0 + spine_w * 1.3, cy1]]),
            shade(sku.primary, 0.55),
            1.2 * u,
            0.8,
        )
    band_y = cy0 + ch * (0.08 + 0.08 * sku.variant)
    band = np.array(
        [
            [cx0 + cw * 0.12, band_y],
            [cx1 - cw * 0.08, band_y],
            [cx1 - cw * 0.08, band_y + ch * 0.17],
            [cx0 + cw * 0.12, band_y + ch * 0.17],
        ]
    )
    layer.paint(band, sku.accent, 0.92)
    ink = (25, 25, 30) if sum(sku.accent) > 380 else (245, 245, 245)
    for k, frac in enumerate((0.75, 0.5)):
        y = band_y + ch * (0.05 + 0.065 * k)
        layer.line(
            np.array([[cx0 + cw * 0.18, y], [cx0 + cw * (0.18 + 0.66 * frac), y]]),
            ink,
            3.2 * u - k * u,
        )
    ay = cy1 - ch * 0.08
    layer.line(
        np.array([[cx0 + cw * 0.3, ay], [cx1 - cw * 0.2, ay]]),
        mix(sku.accent, sku.primary, 0.2),
        2.2 * u,
    )
    shine = np.array(
        [
            [cx0 + cw * 0.55, cy0],
            [cx0 + cw * 0.7, cy0],
            [cx0 + cw * 0.35, cy1],
            [cx0 + cw * 0.2, cy1],
        ]
    )
    layer.paint(shine, (255, 255, 255), 0.06)
    return Geometry(
        rect=rect, extent=cw, regions={"cover": cmask}, shapes={"cover": (cx0, cy0, cx1, cy1)}
    )


def _art(
    layer: Layer, sku: SkuSpec, c: tuple[float, float, float, float], cmask: np.ndarray
) -> None:
    cx0, cy0, cx1, cy1 = c
    cw, ch = cx1 - cx0, cy1 - cy0
    s = layer.size
    if sku.pattern == "sun":
        layer.blend(
            dmg.clip(
                poly_mask(s, ellipse(cx0 + cw * 0.55, cy0 + ch * 0.55, cw * 0.24, cw * 0.24)), cmask
            ),
            sku.secondary,
        )
        layer.paint(
            np.array([[cx0, cy0 + ch * 0.66], [cx1, cy0 + ch * 0.66], [cx1, cy1], [cx0, cy1]]),
            shade(sku.primary, 0.7),
        )
    elif sku.pattern == "mountains":
        for k, (px, hgt) in enumerate(((0.35, 0.35), (0.7, 0.28), (0.5, 0.2))):
            col = sku.secondary if k != 1 else mix(sku.secondary, sku.accent, 0.5)
            tri = np.array(
                [
                    [cx0 + cw * (px - 0.35), cy1],
                    [cx0 + cw * px, cy1 - ch * (hgt + 0.25)],
                    [cx0 + cw * (px + 0.35), cy1],
                ]
            )
            layer.blend(dmg.clip(poly_mask(s, tri), cmask), col)
    elif sku.pattern == "stripes":
        for k in range(4):
            t = 0.3 + 0.17 * k
            band = np.array(
                [
                    [cx0, cy0 + ch * t],
                    [cx1, cy0 + ch * (t - 0.18)],
                    [cx1, cy0 + ch * (t - 0.11)],
                    [cx0, cy0 + ch * (t + 0.07)],
                ]
            )
            layer.blend(
                dmg.clip(poly_mask(s, band), cmask), sku.secondary if k % 2 == 0 else sku.accent
            )
    else:  # blocks
        for (a, b, cc, d), col in (
            ((0.1, 0.4, 0.55, 0.75), sku.secondary),
            ((0.55, 0.45, 0.9, 0.6), sku.accent),
            ((0.55, 0.6, 0.9, 0.85), shade(sku.secondary, 0.7)),
        ):
            layer.paint(
                np.array(
                    [
                        [cx0 + cw * a, cy0 + ch * b],
                        [cx0 + cw * cc, cy0 + ch * b],
                        [cx0 + cw * cc, cy0 + ch * d],
                        [cx0 + cw * a, cy0 + ch * d],
                    ]
                ),
                col,
            )


def _corner(geom: Geometry, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A cover corner and the two unit directions along its edges (pointing inward)."""
    cx0, cy0, cx1, cy1 = geom.shapes["cover"]
    k = int(rng.integers(0, 4))
    p = np.array([(cx0, cx1, cx1, cx0)[k], (cy0, cy0, cy1, cy1)[k]])
    dirs = np.array([[(1, -1, -1, 1)[k], 0], [0, (1, 1, -1, -1)[k]]], dtype=float)
    return p, dirs


def damage(
    layer: Layer, geom: Geometry, sku: SkuSpec, label: str, sev: float, rng: np.random.Generator
) -> None:
    cover = geom.regions["cover"]
    u = layer.size / 256
    ext = geom.extent
    if label == "stain":
        c = dmg.sample_point(cover, rng, inset=int(ext * 0.15))
        dmg.stain(layer, cover, c, sev, rng, mix(shade(sku.primary, 0.6), (120, 90, 50), 0.5), ext)
    elif label == "tear":
        cx0, cy0, cx1, cy1 = geom.shapes["cover"]
        side = int(rng.integers(0, 3))
        t = rng.uniform(0.3, 0.7)
        p0, d = [
            (np.array([cx1, cy0 + t * (cy1 - cy0)]), np.array([-1.0, rng.uniform(-0.4, 0.4)])),
            (np.array([cx0 + t * (cx1 - cx0), cy0]), np.array([rng.uniform(-0.4, 0.4), 1.0])),
            (np.array([cx0 + t * (cx1 - cx0), cy1]), np.array([rng.uniform(-0.4, 0.4), -1.0])),
        ][side]
        dmg.slit(layer, cover, p0, d, sev, rng, PAGES, (255, 255, 250), ext * 1.1)
    elif label == "dent":
        p, dirs = _corner(geom, rng)
        s = ext * (0.14 + 0.26 * sev)
        a, b = p + dirs[0] * s * rng.uniform(0.8, 1.2), p + dirs[1] * s * rng.uniform(0.8, 1.2)
        flap = np.array([a, b, (a + b) - p])  # the corner folded over onto the cover
        under = dmg.clip(poly_mask(layer.size, np.array([p, a, b])), cover)
        layer.blend(under, PAGES)
        layer.fill(flap, mix(PAGES, sku.primary, 0.25))
        layer.line(np.array([a, b]), shade(sku.primary, 0.4), 1.5 * u)
        shadow = poly_mask(layer.size, np.array([a, b, (a + b) - p + (p - (a + b) / 2) * -0.15]))
        layer.blend(dmg.clip(shadow, 255 - poly_mask(layer.size, flap)), (20, 15, 10), 0.35)
        dmg.dent(layer, cover, (a + b) / 2 + ((a + b) / 2 - p) * 0.3, sev * 0.6, rng, s)
        layer.mark("dent", np.maximum(under, poly_mask(layer.size, flap)))
    elif label == "missing_part":
        p, dirs = _corner(geom, rng)
        s = ext * (0.25 + 0.3 * sev)
        a, b = p + dirs[0] * s * rng.uniform(0.8, 1.2), p + dirs[1] * s * rng.uniform(0.8, 1.2)
        edge = jagged(a, b, rng, s * 0.1, 8)
        chunk = np.vstack([[p], edge])
        m = dmg.clip(poly_mask(layer.size, chunk), cover)
        layer.blend(m, PAGES)
        for k in range(1, 7):  # text lines of the first page now visible
            y = p[1] + dirs[1][1] * k * s * 0.12
            row = np.array([[p[0], y], [p[0] + dirs[0][0] * s * 0.9, y]])
            layer.blend(dmg.clip(line_mask(layer.size, row, u), m), (120, 120, 120), 0.7)
        layer.blend(dmg.clip(line_mask(layer.size, edge, 2 * u), cover), (255, 255, 252), 0.95)
        layer.mark("missing_part", m)
