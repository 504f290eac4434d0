"""Logo / print motifs shared by the categories (part of what makes SKUs differ)."""

from __future__ import annotations

import math

import numpy as np

from vision.synth.canvas import Color, Layer, ellipse, poly_mask


def motif_points(kind: str, x: float, y: float, r: float) -> list[np.ndarray]:
    """Polygons (filled in order; a second polygon is a hole punched in the first)."""
    if kind == "star":
        t = np.arange(10) * math.pi / 5 - math.pi / 2
        rad = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        return [np.stack([x + rad * np.cos(t), y + rad * np.sin(t)], axis=1)]
    if kind == "triangle":
        t = np.array([-90, 30, 150]) * math.pi / 180
        return [np.stack([x + r * np.cos(t), y + r * np.sin(t)], axis=1)]
    if kind == "diamond":
        return [np.array([[x, y - r], [x + r * 0.7, y], [x, y + r], [x - r * 0.7, y]])]
    if kind == "heart":
        t = np.linspace(0, 2 * math.pi, 40)
        hx = 16 * np.sin(t) ** 3
        hy = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return [np.stack([x + hx * r / 17, y + hy * r / 17], axis=1)]
    if kind == "ring":
        return [ellipse(x, y, r, r, n=32), ellipse(x, y, r * 0.55, r * 0.55, n=32)]
    return [ellipse(x, y, r, r, n=32)]


def motif(
    layer: Layer,
    kind: str,
    x: float,
    y: float,
    r: float,
    color: Color,
    clip: np.ndarray | None = None,
    opacity: float = 1.0,
) -> np.ndarray:
    """Paint a motif onto existing pixels; returns its mask."""
    polys = motif_points(kind, x, y, r)
    m = poly_mask(layer.size, polys[0])
    for hole in polys[1:]:
        m = np.minimum(m, 255 - poly_mask(layer.size, hole))
    if clip is not None:
        m = (m.astype(np.uint16) * clip // 255).astype(np.uint8)
    layer.blend(m, color, opacity)
    return m
