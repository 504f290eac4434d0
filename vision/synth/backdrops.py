"""Backdrops for the wide variety: the classic surfaces plus carpet, concrete, the dock
table and a conveyor belt, and everyday clutter poking in at the frame edges.

Shoppers photograph returns on beds, carpets and kitchen tables with other things in
view; the dock camera looks straight down at a table or a belt. A model that only saw
clean single-surface backdrops learns that anything extra in the frame is unusual.
All float32 RGB in 0..255, vectorised, deterministic from the generator passed in.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vision.synth.catalog import hsv
from vision.synth.scene import BACKGROUNDS, make_background

HOME_SURFACES: tuple[str, ...] = (*BACKGROUNDS, "carpet", "concrete")
DOCK_SURFACES: tuple[str, ...] = ("dock_table", "conveyor", "concrete")


def _noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    small = rng.random((cells, cells)).astype(np.float32)
    return np.asarray(cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC))


def wide_background(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A float32 (size, size, 3) surface of ``kind`` (HOME_SURFACES or DOCK_SURFACES)."""
    if kind in BACKGROUNDS:
        return make_background(kind, size, rng)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == "carpet":
        base = np.array(hsv(rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.3, 0.7)), np.float32)
        pile = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 0.8)
        f = 1 + 0.35 * (pile - 0.5) + 0.15 * (_noise(rng, size, 6) - 0.5)
    elif kind == "concrete":
        base = np.array(hsv(0.08, rng.uniform(0, 0.08), rng.uniform(0.45, 0.75)), np.float32)
        f = 1 + 0.12 * (_noise(rng, size, 7) - 0.5) + 0.1 * (rng.random((size, size)) - 0.5)
        f = f - 0.25 * (_noise(rng, size, 30) > 0.93)  # pits and stains
    elif kind == "dock_table":
        base = np.array((178, 165, 150), np.float32) + rng.uniform(-15, 15, 3).astype(np.float32)
        grain = cv2.GaussianBlur(
            rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), sigmaX=4.0, sigmaY=0.6
        )
        f = 1 + 0.04 * (_noise(rng, size, 8) - 0.5) * 2 + 0.05 * grain
    else:  # conveyor: dark ribbed belt between steel rails
        base = np.array((58, 60, 64), np.float32) * rng.uniform(0.8, 1.3)
        pitch = size * rng.uniform(0.02, 0.04)
        ribs = 1 + 0.12 * np.sin(2 * math.pi * ys / pitch)
        rail = (np.minimum(xs, size - 1 - xs) < size * 0.06).astype(np.float32)
        f = ribs * (1 + 0.1 * (_noise(rng, size, 12) - 0.5)) * (1 + 1.6 * rail)
    return np.clip(base[None, None, :] * np.asarray(f, np.float32)[..., None], 0, 255).astype(
        np.float32
    )


def _edge_point(size: int, rng: np.random.Generator) -> tuple[float, float]:
    """A point near one frame edge (partly out of frame), for clutter and hands."""
    t = rng.uniform(0, size)
    d = rng.uniform(-0.04, 0.06) * size
    edge = int(rng.integers(0, 4))
    return ((d, t), (size - d, t), (t, d), (t, size - d))[edge]


def clutter(bg: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Draw 1-3 everyday objects at the frame edges of ``bg`` in place (with soft contact
    shadows): a phone or notebook, a mug rim, a roll of tape, a cable. Returns their names."""
    size = bg.shape[0]
    names = []
    for _ in range(int(rng.integers(1, 4))):
        shape = np.zeros((size, size), np.uint8)
        cx, cy = _edge_point(size, rng)
        kind = ("slab", "ring", "disc", "cable")[int(rng.integers(0, 4))]
        r = size * rng.uniform(0.08, 0.16)
        if kind == "slab":
            box = ((cx, cy), (r * 2, r * rng.uniform(1.0, 1.6)), rng.uniform(0, 180))
            cv2.fillPoly(shape, [cv2.boxPoints(box).astype(np.int32)], 255, cv2.LINE_AA)
        elif kind in ("ring", "disc"):
            cv2.circle(shape, (int(cx), int(cy)), int(r), 255, -1, cv2.LINE_AA)
        else:
            pts = np.cumsum(rng.normal(0, size * 0.06, (6, 2)), axis=0) + np.array([cx, cy])
            cv2.polylines(
                shape, [pts.astype(np.int32)], False, 255, max(2, size // 80), cv2.LINE_AA
            )
        a = shape.astype(np.float32) / 255
        shadow = cv2.GaussianBlur(a, (0, 0), size / 90)
        shadow = np.roll(shadow, (int(size * 0.012), int(size * 0.012)), axis=(0, 1))
        color = np.array(hsv(rng.random(), rng.uniform(0, 0.7), rng.uniform(0.1, 0.95)), np.float32)
        shaded = color * (0.85 + 0.3 * _noise(rng, size, 3))[..., None]
        if kind == "ring":  # tape roll: a hole shows the surface through
            hole = np.zeros_like(shape)
            cv2.circle(hole, (int(cx), int(cy)), int(r * 0.55), 255, -1, cv2.LINE_AA)
            a = a * (1 - hole.astype(np.float32) / 255)
        bg *= (1 - 0.35 * shadow)[..., None]
        bg[:] = bg * (1 - a[..., None]) + shaded * a[..., None]
        names.append(kind)
    return names
