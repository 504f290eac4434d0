"""Cardboard box / parcel in a three-quarter view: front, top and side faces, print,
shipping label, tape; sealed (intact tape + seal sticker) or opened (flaps up)."""

from __future__ import annotations

import numpy as np

from vision.synth import damage as dmg
from vision.synth.canvas import Layer, blob, jagged, line_mask, mix, poly_mask, shade
from vision.synth.catalog import SkuSpec
from vision.synth.items.base import Geometry
from vision.synth.items.motif import motif
from vision.synth.packaging import seal_sticker
from vision.synth.state import ItemState

KRAFT = ((198, 154, 106), (184, 140, 94), (210, 172, 128))
TAPE = (214, 178, 118)
INSIDE = (120, 88, 56)


def _quad(*pts: tuple[float, float]) -> np.ndarray:
    return np.array(pts, dtype=np.float64)


def draw(
    layer: Layer,
    sku: SkuSpec,
    rect: tuple[float, float, float, float],
    state: ItemState,
    view: np.random.Generator,
) -> Geometry:
    x0, y0, x1, y1 = rect
    W, H = x1 - x0, y1 - y0
    u = layer.size / 256
    d = 0.32
    fw = min(W / (1 + d + 0.14), H / (1.3 / sku.aspect + 0.55 * d))
    fh = fw / sku.aspect
    dx, dy, flap = d * fw, 0.55 * d * fw, 0.3 * fh
    fx0 = x0 + (W - fw * (1 + d)) / 2
    fy1 = y1 - (H - (fh + dy + flap)) / 2
    fx1, fy0 = fx0 + fw, fy1 - fh
    base = sku.primary if sku.style == "retail" else KRAFT[int(sku.variant * 3) % 3]
    front = _quad((fx0, fy0), (fx1, fy0), (fx1, fy1), (fx0, fy1))
    top = _quad((fx0, fy0), (fx1, fy0), (fx1 + dx, fy0 - dy), (fx0 + dx, fy0 - dy))
    side = _quad((fx1, fy0), (fx1 + dx, fy0 - dy), (fx1 + dx, fy1 - dy), (fx1, fy1))
    opened = state.packaging == "opened"
    if opened:  # back flap rises behind the opening
        layer.fill(
            _quad(
                (fx0 + dx, fy0 - dy),
                (fx1 + dx, fy0 - dy),
                (fx1 + dx + 0.04 * fw, fy0 - dy - flap),
                (fx0 + dx + 0.04 * fw, fy0 - dy - flap),
            ),
            shade(base, 1.05),
        )
    layer.fill(front, base)
    layer.fill(side, shade(base, 0.76))
    layer.fill(top, shade(base, 1.12) if not opened else shade(INSIDE, 0.55))
    regions = {
        "front": poly_mask(layer.size, front),
        "side": poly_mask(layer.size, side),
        "top": poly_mask(layer.size, top),
    }
    _print(layer, sku, front, side, regions, base)
    if sku.style in ("shipping", "carton"):
        _label(layer, top if not opened else front, view, u, on_top=not opened)
    edge = shade(base, 0.6)
    for poly in (front, side) if opened else (front, side, top):
        layer.line(poly, edge, 1.1 * u, 0.8, closed=True)
    tape_w = 0.14 * fw
    mx = (fx0 + fx1) / 2
    if opened:
        layer.paint(
            _quad(
                (fx0 + dx * 0.15, fy0 - dy * 0.15),
                (fx1 + dx * 0.15, fy0 - dy * 0.15),
                (fx1 + dx, fy0 - dy),
                (fx0 + dx, fy0 - dy),
            ),
            shade(INSIDE, 0.8),
        )
        for sx, lean in ((fx0, -0.1), (fx1, 0.06)):
            layer.fill(
                _quad(
                    (sx, fy0),
                    (sx + dx, fy0 - dy),
                    (sx + dx + lean * fw, fy0 - dy - flap * 0.95),
                    (sx + lean * fw, fy0 - flap * 0.95),
                ),
                mix(KRAFT[2], (255, 255, 255), 0.15),
            )
            layer.line(_quad((sx, fy0), (sx + lean * fw, fy0 - flap * 0.95)), edge, u)
        front_flap = _quad(
            (fx0, fy0),
            (fx1, fy0),
            (fx1 + 0.01 * fw, fy0 + 0.3 * fh),
            (fx0 - 0.01 * fw, fy0 + 0.3 * fh),
        )
        layer.fill(front_flap, shade(base, 0.9))
        layer.line(front_flap, edge, 1.2 * u, closed=True)
        cut = jagged(
            np.array([mx - tape_w / 2, fy0 + 0.12 * fh]),
            np.array([mx + tape_w / 2, fy0 + 0.12 * fh]),
            view,
            1.5 * u,
            5,
        )
        layer.paint(
            np.vstack(
                [cut, [[mx + tape_w / 2, fy0 + 0.3 * fh], [mx - tape_w / 2, fy0 + 0.3 * fh]]]
            ),
            TAPE,
            0.85,
        )
    else:
        layer.paint(
            _quad(
                (mx - tape_w / 2, fy0),
                (mx + tape_w / 2, fy0),
                (mx + tape_w / 2 + dx, fy0 - dy),
                (mx - tape_w / 2 + dx, fy0 - dy),
            ),
            TAPE,
            0.85,
        )
        layer.paint(
            _quad(
                (mx - tape_w / 2, fy0),
                (mx + tape_w / 2, fy0),
                (mx + tape_w / 2, fy0 + 0.28 * fh),
                (mx - tape_w / 2, fy0 + 0.28 * fh),
            ),
            TAPE,
            0.85,
        )
        layer.line(
            _quad((mx - tape_w * 0.3, fy0 + 1), (mx - tape_w * 0.3 + dx, fy0 - dy + 1)),
            (255, 250, 235),
            u,
            0.5,
        )
        if state.packaging == "sealed":
            seal_sticker(layer, mx, fy0 + 0.2 * fh, max(0.085 * fw, 6 * u))
    return Geometry(
        rect=rect,
        extent=fw,
        regions=regions,
        shapes={"front": front, "side": side, "top": top, "base": base, "fw": fw, "fh": fh},
    )


def _print(
    layer: Layer,
    sku: SkuSpec,
    front: np.ndarray,
    side: np.ndarray,
    regions: dict[str, np.ndarray],
    base: tuple[int, int, int],
) -> None:
    (fx0, fy0), (fx1, fy1) = front[0], front[2]
    fw, fh = fx1 - fx0, fy1 - fy0
    ink = sku.secondary if sku.style == "retail" else sku.primary
    both = np.maximum(regions["front"], regions["side"])
    if sku.pattern == "band":
        band = _quad(
            (fx0, fy0 + 0.45 * fh),
            (fx1, fy0 + 0.45 * fh),
            (fx1, fy0 + 0.68 * fh),
            (fx0, fy0 + 0.68 * fh),
        )
        layer.blend(dmg.clip(poly_mask(layer.size, band), both), ink)
        (sx0, sy0), (sx1, sy1) = side[0], side[1]
        sb = _quad(
            (sx0, sy0 + 0.45 * fh),
            (sx1, sy1 + 0.45 * fh),
            (sx1, sy1 + 0.68 * fh),
            (sx0, sy0 + 0.68 * fh),
        )
        layer.blend(dmg.clip(poly_mask(layer.size, sb), regions["side"]), shade(ink, 0.78))
    elif sku.pattern == "arrows":
        for k in range(2):
            ax = fx0 + fw * (0.14 + 0.12 * k)
            layer.paint(
                _quad(
                    (ax, fy0 + 0.38 * fh),
                    (ax + 0.05 * fw, fy0 + 0.5 * fh),
                    (ax + 0.018 * fw, fy0 + 0.5 * fh),
                    (ax + 0.018 * fw, fy0 + 0.62 * fh),
                    (ax - 0.018 * fw, fy0 + 0.62 * fh),
                    (ax - 0.018 * fw, fy0 + 0.5 * fh),
                    (ax - 0.05 * fw, fy0 + 0.5 * fh),
                ),
                ink,
            )
        motif(
            layer,
            sku.motif,
            fx0 + 0.7 * fw,
            fy0 + 0.6 * fh,
            0.12 * min(fw, fh * 1.5),
            ink,
            clip=both,
        )
    elif sku.pattern == "corner":
        layer.blend(
            dmg.clip(
                poly_mask(
                    layer.size, _quad((fx0, fy1 - 0.6 * fh), (fx0 + 0.6 * fh, fy1), (fx0, fy1))
                ),
                regions["front"],
            ),
            ink,
        )
        motif(
            layer,
            sku.motif,
            fx0 + 0.65 * fw,
            fy0 + 0.55 * fh,
            0.13 * min(fw, fh * 1.5),
            ink,
            clip=both,
        )
    else:  # logo
        motif(
            layer,
            sku.motif,
            fx0 + 0.5 * fw,
            fy0 + 0.56 * fh,
            0.17 * min(fw, fh * 1.4),
            ink,
            clip=both,
        )
        layer.line(
            _quad((fx0 + 0.3 * fw, fy0 + 0.85 * fh), (fx0 + 0.7 * fw, fy0 + 0.85 * fh)),
            ink,
            max(1.0, 0.04 * fh),
        )
    del base


def _label(
    layer: Layer, face: np.ndarray, view: np.random.Generator, u: float, on_top: bool
) -> None:
    """White shipping label with a barcode, on the top face (or the front when open)."""
    p0, p1, p3 = face[0], face[1], face[3]
    ex, ey = p1 - p0, p3 - p0
    o = p0 + ex * 0.58 + ey * (0.2 if on_top else 0.68)
    a, b = ex * 0.32, ey * (0.55 if on_top else 0.26)
    lab = np.array([o, o + a, o + a + b, o + b])
    layer.paint(lab, (246, 246, 242))
    for k in range(14):
        t = 0.1 + 0.8 * k / 14
        if view.random() < 0.7:
            layer.line(
                np.array([o + a * t + b * 0.55, o + a * t + b * 0.9]),
                (20, 20, 20),
                max(1.0, 0.7 * u),
            )
    layer.line(np.array([o + a * 0.1 + b * 0.25, o + a * 0.8 + b * 0.25]), (60, 60, 60), u)


def damage(
    layer: Layer, geom: Geometry, sku: SkuSpec, label: str, sev: float, rng: np.random.Generator
) -> None:
    g = geom.shapes
    u = layer.size / 256
    faces = ("front", "side") if rng.random() < 0.3 else ("front",)
    region = geom.regions[faces[-1]]
    if label == "dent":
        for _ in range(1 + int(sev >= 0.75)):  # a badly knocked box has several dents
            c = dmg.sample_point(region, rng, inset=int(g["fw"] * 0.12))
            dmg.dent(layer, region, c, sev, rng, g["fw"] * 1.2)
    elif label == "stain":
        allf = np.maximum(
            np.maximum(geom.regions["front"], geom.regions["side"]), geom.regions["top"]
        )
        c = dmg.sample_point(geom.regions["front"], rng, inset=int(g["fw"] * 0.1))
        dmg.stain(layer, allf, c, sev, rng, shade(g["base"], 0.55), g["fw"] * 1.1)
    elif label == "tear":
        front = g["front"]
        (fx0, fy0), (fx1, fy1) = front[0], front[2]
        if rng.random() < 0.5:
            p0 = np.array([fx0 + rng.uniform(0.2, 0.8) * (fx1 - fx0), fy1])
            d = np.array([rng.uniform(-0.4, 0.4), -1.0])
        else:
            p0 = np.array([fx0, fy0 + rng.uniform(0.3, 0.8) * (fy1 - fy0)])
            d = np.array([1.0, rng.uniform(-0.4, 0.4)])
        dmg.slit(
            layer,
            geom.regions["front"],
            p0,
            d,
            sev,
            rng,
            (62, 44, 28),
            (236, 218, 180),
            g["fw"] * 1.2,
        )
    elif label == "packaging_damage":
        _crush(layer, geom, sev, rng)
    del sku, u


def _crush(layer: Layer, geom: Geometry, sev: float, rng: np.random.Generator) -> None:
    """A crushed corner: the silhouette caves in, with a torn rim and creases around it."""
    g = geom.shapes
    u = layer.size / 256
    front, top = g["front"], g["top"]
    corners = [front[0], front[1], top[2], front[2]]
    center = np.array(corners[int(rng.integers(0, 4))], float)
    s = g["fw"] * (0.08 + 0.15 * sev + 0.25 * sev**2)
    bite = blob(center[0], center[1], s, rng, rough=0.25)
    cut = poly_mask(layer.size, bite)
    layer.erase(cut)
    area = dmg.clip(
        poly_mask(layer.size, blob(center[0], center[1], s * 1.8, rng, rough=0.2)), layer.alpha
    )
    layer.blend(area, (40, 28, 18), 0.3 + 0.25 * sev)
    rim = dmg.clip(line_mask(layer.size, bite, 2.5 * u, closed=True), layer.alpha)
    layer.blend(rim, (232, 212, 172), 0.9)
    creases = np.zeros_like(cut)
    for _ in range(3 + round(5 * sev)):
        a = rng.uniform(0, 2 * np.pi)
        q = center + np.array([np.cos(a), np.sin(a)]) * s * rng.uniform(1.3, 2.0)
        creases = np.maximum(
            creases, line_mask(layer.size, jagged(center, q, rng, s * 0.15, 5), 1.4 * u)
        )
    creases = dmg.clip(creases, area)
    layer.blend(creases, (45, 30, 18), 0.75)
    layer.mark("packaging_damage", np.maximum(np.maximum(cut, area), rim))
