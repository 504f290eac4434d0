"""Shoe, side profile (toe to the left): sole, upper, collar, tongue, laces, side print."""

from __future__ import annotations

import itertools

import numpy as np

from vision.synth import damage as dmg
from vision.synth.canvas import (
    Layer,
    chaikin,
    ellipse,
    grid,
    line_mask,
    mix,
    poly_mask,
    shade,
)
from vision.synth.catalog import SkuSpec
from vision.synth.items.base import Geometry
from vision.synth.items.motif import motif
from vision.synth.state import ItemState

SOLES = ((238, 236, 230), (48, 46, 46), (196, 146, 88))


def _uv(rect: tuple[float, float, float, float], pts: list[tuple[float, float]]) -> np.ndarray:
    x0, y0, x1, y1 = rect
    a = np.array(pts, dtype=np.float64)
    return np.stack([x0 + a[:, 0] * (x1 - x0), y0 + a[:, 1] * (y1 - y0)], axis=1)


def draw(
    layer: Layer,
    sku: SkuSpec,
    rect: tuple[float, float, float, float],
    state: ItemState,
    view: np.random.Generator,
) -> Geometry:
    del view
    u = layer.size / 256
    w = rect[2] - rect[0]
    high = sku.style == "hightop"
    st = 0.8 - 0.06 * sku.variant  # sole top (v)
    sole_color = SOLES[int(sku.variant * 3) % 3]
    if sole_color == SOLES[0] and sum(sku.primary) > 600:
        sole_color = SOLES[2]
    collar_y = 0.0 if high else 0.16
    upper_pts = [
        (0.01, st + 0.02),
        (0.01, st - 0.16),
        (0.07, st - 0.33),
        (0.2, 0.4),
        (0.3, 0.34),
        (0.5, collar_y + 0.1),
        (0.56, collar_y),
        (0.78, collar_y + 0.02),
        (0.93, collar_y + 0.03),
        (0.99, 0.4),
        (1.0, st + 0.02),
    ]
    upper = chaikin(_uv(rect, upper_pts), 3)
    layer.fill(upper, sku.primary)
    umask = poly_mask(layer.size, upper)
    _pattern(layer, sku, rect, umask, st)
    _, ys = grid(layer.size)
    v = (ys - rect[1]) / (rect[3] - rect[1])
    layer.multiply((1 + (1.08 - 0.22 * v - 1) * (umask / 255.0)).astype(np.float32))
    collar = chaikin(
        _uv(
            rect,
            [
                (0.55, collar_y + 0.05),
                (0.7, collar_y + 0.0),
                (0.9, collar_y + 0.05),
                (0.88, collar_y + 0.13),
                (0.7, collar_y + 0.12),
                (0.58, collar_y + 0.11),
            ],
        ),
        2,
    )
    layer.paint(collar, (38, 34, 34))
    tongue = chaikin(
        _uv(
            rect,
            [
                (0.47, collar_y + 0.16),
                (0.5, collar_y - 0.08),
                (0.6, collar_y - 0.1),
                (0.61, collar_y + 0.08),
            ],
        ),
        2,
    )
    layer.fill(tongue, shade(sku.primary, 1.12))
    sole = chaikin(
        _uv(
            rect,
            [
                (0.0, st),
                (0.0, st + 0.1),
                (0.04, 0.97),
                (0.12, 1.0),
                (0.9, 1.0),
                (0.99, 0.97),
                (1.0, st + 0.08),
                (1.0, st - 0.01),
                (0.5, st + 0.02),
            ],
        ),
        2,
    )
    layer.fill(sole, sole_color)
    layer.line(
        _uv(rect, [(0.03, 0.92), (0.5, 0.935), (0.97, 0.92)]), shade(sole_color, 0.7), 1.2 * u
    )
    if sku.style in ("sneaker", "court"):
        cap = chaikin(
            _uv(
                rect,
                [
                    (0.0, st + 0.02),
                    (0.01, st - 0.12),
                    (0.08, st - 0.24),
                    (0.16, st - 0.2),
                    (0.17, st + 0.02),
                ],
            ),
            2,
        )
        layer.paint(cap, sole_color)
    layer.line(
        _uv(rect, [(0.04, st - 0.04), (0.5, st - 0.03), (0.97, st - 0.04)]),
        shade(sku.primary, 0.6),
        u,
    )
    lace_top = collar_y + 0.15
    eyelets = [_uv(rect, [(0.27 + 0.055 * k, 0.4 + (lace_top - 0.4) * k / 4)])[0] for k in range(5)]
    lace_color = (245, 245, 240) if sum(sku.primary) < 560 else shade(sku.secondary, 0.7)
    lace_poly = chaikin(
        np.array(
            [
                eyelets[0] + [-0.05 * w, 0.04 * w],
                eyelets[-1] + [-0.1 * w, -0.06 * w],
                eyelets[-1] + [0.1 * w, -0.06 * w],
                eyelets[-1] + [0.1 * w, 0.13 * w],
                eyelets[0] + [0.06 * w, 0.07 * w],
            ]
        ),
        1,
    )
    for p in eyelets:
        for q in (p + np.array([0.025 * w, 0.03 * w]), p - np.array([0.018 * w, 0.0])):
            layer.paint(ellipse(q[0], q[1], 2.4 * u, 2.4 * u, n=10), (150, 150, 155))
            layer.paint(ellipse(q[0], q[1], 1.3 * u, 1.3 * u, n=8), (20, 20, 20))
    if "missing_part" not in state.labels:
        _laces(layer, eyelets, w, lace_color)
    return Geometry(
        rect=rect,
        extent=w * 0.6,
        regions={
            "upper": dmg.clip(umask, 255 - poly_mask(layer.size, collar)),
            "sole": poly_mask(layer.size, sole),
            "laces": poly_mask(layer.size, lace_poly),
        },
        shapes={"sole_color": sole_color, "st": st},
    )


def _laces(layer: Layer, eyelets: list[np.ndarray], w: float, color: tuple[int, int, int]) -> None:
    u = layer.size / 256
    for a, b in itertools.pairwise(eyelets):
        layer.line(
            np.array([a + np.array([0.025 * w, 0.03 * w]), b - np.array([0.018 * w, 0.0])]),
            color,
            3.2 * u,
        )
        layer.line(
            np.array([a - np.array([0.018 * w, 0.0]), b + np.array([0.025 * w, 0.03 * w])]),
            shade(color, 0.85),
            3.2 * u,
        )
    top = eyelets[-1]
    for sgn in (-1, 1):
        layer.line(
            ellipse(top[0] + sgn * 0.045 * w, top[1] - 0.02 * w, 0.045 * w, 0.025 * w, n=16),
            color,
            2.6 * u,
            closed=True,
        )
    layer.line(np.array([top, top + np.array([0.02 * w, 0.12 * w])]), color, 2.6 * u)
    layer.line(np.array([top, top + np.array([0.08 * w, 0.1 * w])]), shade(color, 0.9), 2.6 * u)


def _pattern(
    layer: Layer,
    sku: SkuSpec,
    rect: tuple[float, float, float, float],
    umask: np.ndarray,
    st: float,
) -> None:
    c = sku.secondary
    if sku.pattern == "stripes":
        for k in range(3):
            x = 0.42 + 0.07 * k
            layer.paint(
                _uv(
                    rect,
                    [(x, st - 0.02), (x + 0.03, st - 0.02), (x + 0.15, 0.36), (x + 0.12, 0.36)],
                ),
                c,
            )
    elif sku.pattern == "swoosh":
        pts = chaikin(
            _uv(
                rect,
                [
                    (0.2, st - 0.08),
                    (0.6, st - 0.1),
                    (0.9, 0.42),
                    (0.62, st - 0.22),
                    (0.28, st - 0.14),
                ],
            ),
            2,
        )
        layer.paint(pts, c)
    elif sku.pattern == "panel":
        pts = chaikin(_uv(rect, [(0.35, st), (0.4, 0.45), (0.75, 0.32), (0.85, st)]), 1)
        layer.blend(dmg.clip(poly_mask(layer.size, pts), umask), mix(c, sku.primary, 0.2))
    elif sku.pattern == "heel_tab":
        pts = _uv(rect, [(0.82, 0.25), (1.0, 0.4), (1.0, st), (0.84, st)])
        layer.blend(dmg.clip(poly_mask(layer.size, pts), umask), c)
    x0, y0, x1, y1 = rect
    motif(
        layer,
        sku.motif,
        x0 + 0.62 * (x1 - x0),
        y0 + 0.55 * (y1 - y0),
        0.06 * (x1 - x0),
        sku.accent,
        clip=umask,
    )


def damage(
    layer: Layer, geom: Geometry, sku: SkuSpec, label: str, sev: float, rng: np.random.Generator
) -> None:
    upper = geom.regions["upper"]
    u = layer.size / 256
    if label == "scratch":
        color = dmg.contrast_color(layer, upper, (215, 212, 205), (80, 76, 72))
        dmg.scratches(layer, upper, sev, rng, color, geom.extent, width=1.8)
    elif label == "stain":
        c = dmg.sample_point(upper, rng, inset=int(geom.extent * 0.08))
        dmg.stain(
            layer, np.maximum(upper, geom.regions["sole"]), c, sev, rng, (92, 70, 48), geom.extent
        )
    elif label == "tear":
        p = dmg.sample_point(upper, rng, inset=int(geom.extent * 0.15))
        d = np.array([rng.uniform(0.6, 1), rng.uniform(-0.5, 0.5)])
        dmg.slit(
            layer,
            upper,
            p,
            d,
            sev,
            rng,
            (28, 24, 24),
            shade(sku.primary, 1.35),
            geom.extent,
            from_edge=False,
        )
    elif label == "missing_part":
        laces = geom.regions["laces"]
        tongue = dmg.clip(laces, geom.regions["upper"])
        layer.blend(tongue, shade(sku.primary, 1.2), 0.35)
        mark = laces
        if sev > 0.7:  # the heel of the sole broke away too
            st = geom.shapes["st"]
            chunk = _uv(
                geom.rect,
                [(0.78, 1.02), (0.8, 0.9), (0.86, st + 0.03), (1.02, st + 0.02), (1.02, 1.02)],
            )
            chunk = chunk + rng.normal(0, u, chunk.shape)
            cut = dmg.clip(poly_mask(layer.size, chunk), geom.regions["sole"])
            layer.erase(cut)
            layer.blend(
                dmg.clip(line_mask(layer.size, chunk, 2.5 * u, closed=True), layer.alpha),
                shade(geom.shapes["sole_color"], 0.6),
            )
            mark = np.maximum(mark, cut)
        layer.mark("missing_part", mark)
