"""Packing tape across the item and packing material (bubble wrap, paper fill) at the
photo's edges: what a returned parcel looks like on the dock, and none of it damage.

Tape follows the rule in ``dockmarks.py``: opaque tape never covers damage. A strip is
tried at a few offsets; when every one would hide damage the tape is clear (alpha about
0.3), through which the damage stays visible, so the damage mask stays right.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

TAPES = {  # name: (RGB, alpha)
    "brown": ((176, 132, 78), 0.85),
    "white": ((236, 234, 226), 0.9),
    "printed": ((214, 60, 40), 0.9),
    "clear": ((235, 238, 240), 0.3),
}


def _band(
    shape: tuple[int, int], rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray
) -> np.ndarray:
    """A straight strip across the canvas: |distance to a random line| < half width."""
    h, w = shape
    ang = rng.choice([0.0, math.pi / 2]) + rng.uniform(-0.25, 0.25)
    c = np.array([rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h])
    d = (xs - c[0]) * -math.sin(ang) + (ys - c[1]) * math.cos(ang)
    half = rng.uniform(0.05, 0.09) * min(h, w)
    return np.asarray(np.abs(d) < half)


def tape(rgba: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> str:
    """Lay one strip of tape across the item cut-out in place; returns the tape kind."""
    h, w = mask.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    item = rgba[..., 3] > 0
    names = ("brown", "white", "printed", "clear")
    kind = names[int(rng.integers(0, len(names)))]
    band = _band((h, w), rng, ys, xs) & item
    if kind != "clear":
        for _ in range(4):
            if not (mask[band] > 0).any():
                break
            band = _band((h, w), rng, ys, xs) & item
        else:
            kind = "clear"
    color, alpha = TAPES[kind]
    a = np.float32(alpha) * band.astype(np.float32)
    if kind == "printed":  # repeated white text blocks on red tape
        stripes = ((xs + ys) // max(4, w // 12)) % 3 == 0
        tint = np.where(stripes[..., None], np.float32(245), np.array(color, np.float32))
    else:
        tint = np.broadcast_to(np.array(color, np.float32), (h, w, 3))
    gloss = 1 + 0.08 * np.sin(xs / max(2.0, w / 20) + ys / max(2.0, h / 15))
    rgb = rgba[..., :3].astype(np.float32)
    out = rgb * (1 - a[..., None]) + tint * gloss[..., None] * a[..., None]
    rgba[..., :3] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return kind


def _edge_region(size: int, rng: np.random.Generator) -> np.ndarray:
    """Float (size, size) 0..1 weight of a wavy band along one or two frame edges."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    dist = [xs, 1 - xs, ys, 1 - ys]
    edges = rng.choice(4, size=int(rng.integers(1, 3)), replace=False)
    depth = rng.uniform(0.08, 0.2)
    wave = 0.03 * np.sin(2 * math.pi * (xs + ys) * rng.uniform(2, 5) + rng.uniform(0, 6))
    region = np.zeros((size, size), np.float32)
    for e in edges:
        region = np.maximum(region, (dist[int(e)] < depth + wave).astype(np.float32))
    return np.asarray(cv2.GaussianBlur(region, (0, 0), max(0.8, size / 200)))


def bubble_wrap(bg: np.ndarray, rng: np.random.Generator) -> None:
    """Translucent bubble wrap along the edges of a float RGB backdrop, in place."""
    size = bg.shape[0]
    region = _edge_region(size, rng)
    pitch = size * rng.uniform(0.035, 0.06)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    row = np.floor(ys / (pitch * 0.866))
    lx = (xs + (row % 2) * pitch / 2) % pitch - pitch / 2
    ly = ys % (pitch * 0.866) - pitch * 0.433
    r = np.sqrt(lx**2 + ly**2) / (pitch * 0.42)
    bubble = np.clip(1 - r, 0, 1)
    rim = np.exp(-(((r - 0.95) / 0.12) ** 2))
    hi = np.exp(-(((lx + pitch * 0.12) ** 2 + (ly + pitch * 0.12) ** 2) / (pitch * 0.08) ** 2))
    film = 0.25 + 0.2 * rim + 0.55 * hi + 0.1 * bubble
    veil = region * np.clip(film, 0, 0.85)
    bg[:] = bg * (1 - veil[..., None]) + np.float32(238) * veil[..., None]


def paper_fill(bg: np.ndarray, rng: np.random.Generator) -> None:
    """Crumpled kraft or white paper along the edges of a float RGB backdrop, in place."""
    size = bg.shape[0]
    region = _edge_region(size, rng)
    base = np.array((196, 160, 112) if rng.random() < 0.6 else (232, 228, 220), np.float32)
    ridges = np.zeros((size, size), np.float32)
    for cells in (5, 11, 23):
        small = rng.random((cells, cells)).astype(np.float32)
        n = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
        ridges += np.abs(n - 0.5) * (24.0 / cells)
    creases = 0.75 + 0.5 * np.clip(ridges / max(float(ridges.max()), 1e-6), 0, 1)
    paper = base[None, None, :] * creases[..., None]
    bg[:] = bg * (1 - region[..., None]) + paper * region[..., None]
