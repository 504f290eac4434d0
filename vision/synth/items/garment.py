"""Folded garment, top-down: patterned fabric, sleeve folds, collar, buttons, chest print."""

from __future__ import annotations

import numpy as np

from vision.synth import damage as dmg
from vision.synth.canvas import (
    Layer,
    chaikin,
    ellipse,
    grid,
    jagged,
    mix,
    poly_mask,
    shade,
)
from vision.synth.catalog import SkuSpec
from vision.synth.items.base import Geometry
from vision.synth.items.motif import motif
from vision.synth.state import ItemState


def _fabric(
    layer: Layer, sku: SkuSpec, rect: tuple[float, float, float, float], mask: np.ndarray
) -> None:
    x0, y0, x1, y1 = rect
    xs, ys = grid(layer.size)
    uu, vv = (xs - x0) / (x1 - x0), (ys - y0) / (y1 - y0)
    a = np.array(sku.primary, np.float32)
    b = np.array(sku.secondary, np.float32)
    img = np.broadcast_to(a, (layer.size, layer.size, 3)).copy()
    if sku.pattern == "stripes":
        img = np.where((np.floor(vv * 11) % 2 == 0)[..., None], img, b)
    elif sku.pattern == "checks":
        wx = (np.floor(uu * 8) % 2 == 0).astype(np.float32)
        wy = (np.floor(vv * 8) % 2 == 0).astype(np.float32)
        t = (0.3 * wx + 0.3 * wy)[..., None]
        img = img * (1 - t) + b * t
    elif sku.pattern == "dots":
        gx = (uu * 9) % 1 - 0.5
        gy = (vv * 9) % 1 - 0.5
        img = np.where((gx**2 + gy**2 < 0.04)[..., None], b, img)
    weave = 1 + 0.04 * np.sin(xs * 2.2) * np.sin(ys * 2.2)
    img = (img * weave[..., None]).astype(np.float32)
    m = mask[..., None].astype(np.float32) / 255
    layer.rgb = np.clip(layer.rgb * (1 - m) + img * m, 0, 255).astype(np.uint8)


def draw(
    layer: Layer,
    sku: SkuSpec,
    rect: tuple[float, float, float, float],
    state: ItemState,
    view: np.random.Generator,
) -> Geometry:
    del state, view
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    u = layer.size / 256
    cx = (x0 + x1) / 2
    neck = w * 0.16
    body = chaikin(
        np.array(
            [
                [x0, y0 + 0.13 * h],
                [x0 + 0.28 * w, y0 + 0.03 * h],
                [cx - neck, y0],
                [cx + neck, y0],
                [x1 - 0.28 * w, y0 + 0.03 * h],
                [x1, y0 + 0.13 * h],
                [x1, y1 - 0.02 * h],
                [x1 - 0.02 * w, y1],
                [x0 + 0.02 * w, y1],
                [x0, y1 - 0.02 * h],
            ]
        ),
        1,
    )
    layer.fill(body, sku.primary)
    bmask = poly_mask(layer.size, body)
    _fabric(layer, sku, rect, bmask)
    dark = shade(sku.primary, 0.62)
    for sx in (x0 + 0.2 * w, x1 - 0.2 * w):  # sleeves folded behind
        layer.line(
            np.array(
                [[sx, y0 + 0.1 * h], [sx + (0.02 * w if sx < cx else -0.02 * w), y1 - 0.1 * h]]
            ),
            dark,
            1.6 * u,
            0.7,
        )
    layer.line(
        np.array([[x0 + 0.03 * w, y0 + 0.55 * h], [x1 - 0.03 * w, y0 + 0.56 * h]]),
        dark,
        1.2 * u,
        0.35,
    )
    buttons: list[tuple[float, float]] = []
    if sku.style in ("tee", "sweater"):
        if sku.style == "tee":
            opening = ellipse(cx, y0 + 0.02 * h, neck, 0.09 * h, 0, 180, n=24)
            layer.paint(
                np.vstack([opening, [[cx - neck, y0 - 0.01 * h]]]), shade(sku.primary, 0.45)
            )
            layer.line(opening, shade(sku.primary, 0.85), 3.5 * u)
            motif(layer, sku.motif, cx, y0 + 0.42 * h, 0.15 * w, sku.accent, clip=bmask)
        else:
            vee = np.array([[cx - neck, y0], [cx, y0 + 0.3 * h], [cx + neck, y0]])
            layer.paint(vee, shade(sku.primary, 0.45))
            layer.line(vee, shade(sku.primary, 0.8), 4 * u)
            for k in range(int(w / (3 * u))):  # ribbed hem
                x = x0 + k * 3 * u
                layer.line(np.array([[x, y1 - 0.08 * h], [x, y1]]), shade(sku.primary, 0.8), u, 0.6)
    else:
        placket_end = y1 - 0.05 * h if sku.style == "shirt" else y0 + 0.36 * h
        layer.line(
            np.array([[cx - 0.04 * w, y0 + 0.04 * h], [cx - 0.04 * w, placket_end]]), dark, 1.2 * u
        )
        layer.line(
            np.array([[cx + 0.04 * w, y0 + 0.04 * h], [cx + 0.04 * w, placket_end]]), dark, 1.2 * u
        )
        collar_c = mix(sku.primary, (255, 255, 255), 0.15)
        for sgn in (-1, 1):
            pt = np.array(
                [
                    [cx, y0 + 0.05 * h],
                    [cx + sgn * neck * 1.3, y0 - 0.01 * h],
                    [cx + sgn * neck * 1.1, y0 + 0.16 * h],
                ]
            )
            layer.fill(pt, collar_c)
            layer.line(pt, dark, 1.2 * u, closed=True)
        n = 5 if sku.style == "shirt" else 3
        for k in range(n):
            by = y0 + 0.1 * h + k * (placket_end - y0 - 0.14 * h) / max(n - 1, 1)
            buttons.append((cx, by))
        if sku.style == "polo":
            motif(layer, sku.motif, x0 + 0.3 * w, y0 + 0.3 * h, 0.06 * w, sku.accent, clip=bmask)
    geom = Geometry(
        rect=rect,
        extent=w,
        regions={"body": bmask},
        shapes={"buttons": buttons, "button_r": 0.035 * w},
    )
    for bx, by in buttons:
        r = 0.035 * w
        bc = (240, 238, 230) if sum(sku.primary) < 450 else (40, 36, 34)
        layer.fill(ellipse(bx, by, r, r, n=16), bc)
        layer.line(ellipse(bx, by, r, r, n=16), shade(bc, 0.6), 1.0 * u, closed=True)
        for dx in (-0.3, 0.3):
            layer.paint(ellipse(bx + dx * r, by, 0.18 * r, 0.18 * r, n=8), shade(bc, 0.4))
    return geom


def damage(
    layer: Layer, geom: Geometry, sku: SkuSpec, label: str, sev: float, rng: np.random.Generator
) -> None:
    body = geom.regions["body"]
    u = layer.size / 256
    if label == "stain":
        colors = ((88, 52, 30), (120, 24, 48), shade(sku.primary, 0.45))
        c = dmg.sample_point(body, rng, inset=int(geom.extent * 0.15))
        dmg.stain(layer, body, c, sev, rng, colors[int(rng.integers(0, 3))], geom.extent)
    elif label == "tear":
        p = dmg.sample_point(body, rng, inset=int(geom.extent * 0.18))
        a = rng.uniform(0, np.pi)
        d = np.array([np.cos(a), np.sin(a)])
        m = dmg.slit(
            layer,
            body,
            p - d * geom.extent * (0.08 + 0.2 * sev),
            d,
            sev,
            rng,
            shade(sku.primary, 0.3),
            mix(sku.primary, (255, 255, 255), 0.45),
            geom.extent * 1.1,
            from_edge=False,
        )
        del m
    elif label == "missing_part":
        buttons = geom.shapes["buttons"]
        r = geom.shapes["button_r"]
        k = max(1, min(len(buttons), round(sev * len(buttons) + 0.5)))
        picks = rng.choice(len(buttons), size=k, replace=False)
        mark = np.zeros_like(body)
        for i in picks:
            bx, by = buttons[int(i)]
            spot = ellipse(bx, by, r * 1.25, r * 1.25, n=16)
            layer.paint(spot, shade(sku.primary, 1.1))
            layer.line(
                ellipse(bx, by, r * 0.9, r * 0.9, n=16), shade(sku.primary, 0.75), u, closed=True
            )
            for _ in range(3):  # torn thread ends
                q = np.array([bx, by]) + rng.normal(0, r * 0.5, 2)
                layer.line(jagged(np.array([bx, by]), q, rng, u, 3), (30, 30, 30), u)
            mark = np.maximum(mark, poly_mask(layer.size, ellipse(bx, by, r * 1.6, r * 1.6, n=16)))
            # the placket gapes open below a lost button
            gap = np.array([[bx - 0.6 * r, by], [bx + 0.6 * r, by], [bx, by + (2 + 3 * sev) * r]])
            layer.paint(gap, shade(sku.primary, 0.35))
            mark = np.maximum(mark, poly_mask(layer.size, gap))
        layer.mark("missing_part", dmg.clip(mark, body))
