"""Phone / tablet, seen from the front: body, bezel, lock-screen wallpaper, camera."""

from __future__ import annotations

import math

import cv2
import numpy as np

from vision.synth import damage as dmg
from vision.synth.canvas import (
    Layer,
    ellipse,
    grid,
    jagged,
    line_mask,
    mix,
    poly_mask,
    rounded_rect,
    shade,
    soft,
)
from vision.synth.catalog import SkuSpec
from vision.synth.items.base import Geometry
from vision.synth.state import ItemState


def _wallpaper(sku: SkuSpec, size: int, rect: tuple[float, float, float, float]) -> np.ndarray:
    x0, y0, x1, y1 = rect
    xs, ys = grid(size)
    u = (xs - x0) / max(x1 - x0, 1)
    v = (ys - y0) / max(y1 - y0, 1)
    a, b = np.array(sku.primary, np.float32), np.array(sku.secondary, np.float32)
    c = np.array(sku.accent, np.float32)
    t = np.clip(0.6 * v + 0.4 * u, 0, 1)[..., None]
    img = a * (1 - t) + b * t
    if sku.pattern == "waves":
        w = (np.sin(v * 14 + np.sin(u * 5) * 2) > 0.3)[..., None]
        img = np.where(w, img * 0.6 + c * 0.4, img)
    elif sku.pattern == "circles":
        for cx, cy, r in ((0.3, 0.3, 0.28), (0.75, 0.6, 0.35), (0.35, 0.85, 0.2)):
            m = ((u - cx) * (x1 - x0)) ** 2 + ((v - cy) * (x1 - x0)) ** 2 < (r * (x1 - x0)) ** 2
            img = np.where(m[..., None], img * 0.5 + c * 0.5, img)
    elif sku.pattern == "stripes":
        m = (np.floor((u + v) * 7) % 2 == 0)[..., None]
        img = np.where(m, img * 0.75, img)
    return np.clip(img * 0.8, 0, 255).astype(np.uint8)


def draw(
    layer: Layer,
    sku: SkuSpec,
    rect: tuple[float, float, float, float],
    state: ItemState,
    view: np.random.Generator,
) -> Geometry:
    del state
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    u = layer.size / 256
    tablet = sku.style == "tablet"
    radius = w * (0.06 if tablet else 0.13)
    body_color = sku.primary if sku.pattern != "stripes" else shade(sku.primary, 0.6)
    for k in range(2):  # side buttons, drawn first so the body overlaps them
        by = y0 + h * (0.22 + 0.1 * k)
        layer.fill(
            rounded_rect(x1 - 2 * u, by, x1 + 1.6 * u, by + h * 0.07, u), shade(body_color, 0.8)
        )
    body = rounded_rect(x0, y0, x1, y1, radius)
    layer.fill(body, body_color)
    layer.stroke(body, shade(body_color, 1.35), 1.2 * u, closed=True)
    bez = w * (0.1 if sku.style == "bezel" else 0.035 if not tablet else 0.06)
    top = bez * (2.2 if sku.style == "bezel" else 1.0)
    screen_rect = (x0 + bez, y0 + top, x1 - bez, y1 - top)
    screen = rounded_rect(*screen_rect, max(radius - bez, 1.0))
    glass = rounded_rect(
        x0 + bez * 0.4, y0 + bez * 0.4, x1 - bez * 0.4, y1 - bez * 0.4, radius - bez * 0.4
    )
    layer.paint(glass, (18, 18, 22), 1.0)
    smask = poly_mask(layer.size, screen)
    wall = _wallpaper(sku, layer.size, screen_rect)
    layer.rgb = np.where(
        smask[..., None] > 0,
        (wall * (smask[..., None] / 255.0) + layer.rgb * (1 - smask[..., None] / 255.0)).astype(
            np.uint8
        ),
        layer.rgb,
    )
    cx = (x0 + x1) / 2
    scale = w * (0.006 if tablet else 0.0105)
    size_txt, _ = cv2.getTextSize(
        "12:45", cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, round(scale * 2))
    )
    org = (round(cx - size_txt[0] / 2), round(y0 + top + h * 0.2))
    cv2.putText(
        layer.rgb,
        "12:45",
        org,
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (245, 245, 245),
        max(1, round(scale * 2)),
        cv2.LINE_AA,
    )
    if sku.style == "notch":
        layer.paint(
            rounded_rect(cx - w * 0.17, y0 + bez - 1, cx + w * 0.17, y0 + bez + h * 0.035, 3 * u),
            (12, 12, 14),
        )
    elif sku.style in ("punch", "tablet"):
        cam_y = y0 + top + h * 0.022 if sku.style == "punch" else y0 + bez * 0.5
        layer.paint(ellipse(cx, cam_y, w * 0.03, w * 0.03), (8, 8, 10))
    else:
        layer.paint(ellipse(cx, y0 + top * 0.5, w * 0.025, w * 0.025), (8, 8, 10))
        layer.line(
            np.array([[cx - w * 0.12, y0 + top * 0.5], [cx + w * 0.12 - w * 0.1, y0 + top * 0.5]]),
            (60, 60, 64),
            1.5 * u,
        )
        layer.line(
            ellipse(cx, y1 - top * 0.5, w * 0.08, w * 0.08),
            shade(body_color, 0.7),
            1.2 * u,
            closed=True,
        )
    # glare band: view-dependent reflection on the glass
    a = view.uniform(0.5, 1.1)
    off = view.uniform(-0.4, 0.4) * w
    p = np.array([cx + off, (y0 + y1) / 2])
    d = np.array([math.cos(a), math.sin(a)]) * h
    nrm = np.array([-math.sin(a), math.cos(a)]) * w * view.uniform(0.08, 0.2)
    band = np.array([p - d - nrm, p + d - nrm, p + d + nrm, p - d + nrm])
    g = dmg.clip(soft(poly_mask(layer.size, band), 3 * u), smask)
    layer.blend(g, (255, 255, 255), view.uniform(0.06, 0.16))
    return Geometry(
        rect=rect,
        extent=w,
        regions={"screen": smask, "body": poly_mask(layer.size, body)},
        shapes={"radius": radius, "color": body_color},
    )


def damage(
    layer: Layer, geom: Geometry, sku: SkuSpec, label: str, sev: float, rng: np.random.Generator
) -> None:
    x0, y0, x1, y1 = geom.rect
    w, h = x1 - x0, y1 - y0
    u = layer.size / 256
    screen = geom.regions["screen"]
    if label == "scratch":
        dmg.scratches(layer, screen, sev, rng, (235, 235, 240), w)
    elif label == "crack":
        p = dmg.sample_point(screen, rng, inset=int(w * 0.1))
        dmg.crack(layer, screen, p, sev, rng, (240, 240, 245), (10, 10, 10), max(w, h * 0.7))
        shards = dmg.clip(
            poly_mask(
                layer.size, ellipse(p[0], p[1], w * 0.04 * (1 + sev), w * 0.04 * (1 + sev), n=9)
            ),
            screen,
        )
        layer.blend(shards, (200, 200, 205), 0.6)
        layer.mark("crack", shards)
    elif label == "dent":
        _edge_dent(layer, geom, sev, rng)
    elif label == "missing_part":
        corner = int(rng.integers(0, 4))
        cx, cy = (x0, x1, x1, x0)[corner], (y0, y0, y1, y1)[corner]
        sx, sy = (1, -1, -1, 1)[corner], (1, 1, -1, -1)[corner]
        s = w * (0.3 + 0.35 * sev)
        a = np.array([cx + sx * s * rng.uniform(0.9, 1.2), cy])
        b = np.array([cx, cy + sy * s * rng.uniform(0.9, 1.2)])
        edge = jagged(a, b, rng, amp=s * 0.12, n=7)
        chunk = np.vstack([[cx - sx * 3 * u, cy - sy * 3 * u], edge])
        cut = poly_mask(layer.size, chunk)
        layer.erase(cut)
        exposed = dmg.clip(line_mask(layer.size, edge, 5 * u), layer.alpha)
        layer.blend(exposed, (60, 74, 60), 0.95)
        for k in range(1, len(edge) - 1, 2):  # broken glass shards along the break
            q = edge[k] + (np.array([cx, cy]) - edge[k]) * -0.25
            layer.blend(
                dmg.clip(line_mask(layer.size, jagged(edge[k], q, rng, 2 * u, 3), u), screen),
                (235, 235, 240),
                0.85,
            )
            exposed = np.maximum(
                exposed, dmg.clip(line_mask(layer.size, np.array([edge[k], q]), 3 * u), screen)
            )
        layer.blend(
            dmg.clip(line_mask(layer.size, edge + rng.normal(0, u, edge.shape), u), screen),
            (225, 225, 230),
            0.8,
        )
        layer.mark("missing_part", np.maximum(cut, exposed))
    del sku


def _edge_dent(layer: Layer, geom: Geometry, sev: float, rng: np.random.Generator) -> None:
    """A bent, dinged frame: a bite out of one edge with a dark crumpled rim."""
    x0, y0, x1, y1 = geom.rect
    w, h = x1 - x0, y1 - y0
    u = layer.size / 256
    side = int(rng.integers(0, 4))
    t = rng.uniform(0.25, 0.75)
    c = [(x0, y0 + t * h), (x1, y0 + t * h), (x0 + t * w, y0), (x0 + t * w, y1)][side]
    ax = w * (0.04 + 0.06 * sev) if side < 2 else w * (0.1 + 0.2 * sev)
    ay = h * (0.06 + 0.12 * sev) if side < 2 else w * (0.04 + 0.06 * sev)
    bite = poly_mask(layer.size, ellipse(c[0], c[1], ax, ay, n=24))
    layer.erase(bite)
    rim = line_mask(
        layer.size, ellipse(c[0], c[1], ax + 1.5 * u, ay + 1.5 * u, n=24), 3 * u, closed=True
    )
    rim = dmg.clip(rim, layer.alpha)
    layer.blend(rim, mix(geom.shapes["color"], (0, 0, 0), 0.6), 0.85)
    halo = dmg.clip(
        poly_mask(layer.size, ellipse(c[0], c[1], ax * 2.2, ay * 1.8, n=24)), layer.alpha
    )
    dmg.dent(layer, halo, np.array(c), sev, rng, max(ax, ay) * 2.0)
    layer.mark("dent", np.maximum(bite, rim))
