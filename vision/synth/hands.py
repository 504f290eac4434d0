"""A hand or a work glove reaching in from the frame edge.

Shoppers hold items while photographing them and dock staff push parcels under the
camera; the shipped model had never seen either. The hand is drawn over the finished
composite, so unlike stickers it may cover part of the item: the caller clears the
damage mask wherever the hand is opaque (the mask marks visible damage only).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

SKIN = ((224, 188, 160), (198, 150, 118), (160, 112, 82), (110, 76, 56), (236, 204, 180))
GLOVES = ((40, 90, 200), (30, 30, 32), (120, 124, 120), (230, 140, 30), (236, 236, 232))


def hand(img: np.ndarray, rng: np.random.Generator, glove_p: float = 0.3) -> tuple[np.ndarray, str]:
    """Draw a hand entering from a random edge onto float RGB ``img`` in place; returns
    (opaque-coverage bool mask, "hand" or "glove")."""
    size = img.shape[0]
    u = size / 256
    is_glove = rng.random() < glove_p
    palette = GLOVES if is_glove else SKIN
    color = np.array(palette[int(rng.integers(0, len(palette)))], np.float32)
    edge = int(rng.integers(0, 4))
    along = rng.uniform(0.15, 0.85) * size
    reach = rng.uniform(0.1, 0.22) * size
    ang = (math.pi / 2, -math.pi / 2, 0.0, math.pi)[edge] + rng.uniform(-0.5, 0.5)
    base = (
        (along, -0.05 * size),
        (along, 1.05 * size),
        (-0.05 * size, along),
        (1.05 * size, along),
    )[edge]
    d = np.array([math.cos(ang), math.sin(ang)])
    n = np.array([-d[1], d[0]])
    shape = np.zeros((size, size), np.uint8)
    palm = np.array(base) + d * reach * 0.45
    axes = (int(reach * 0.55), int(30 * u * rng.uniform(0.9, 1.3)))
    cv2.ellipse(
        shape, (int(palm[0]), int(palm[1])), axes, math.degrees(ang), 0, 360, 255, -1, cv2.LINE_AA
    )
    wrist = np.array(base) - d * reach
    cv2.line(
        shape,
        tuple(int(v) for v in wrist),
        tuple(int(v) for v in palm),
        255,
        int(44 * u),
        cv2.LINE_AA,
    )
    width = max(3, int(11 * u * rng.uniform(0.85, 1.2)))
    for k, off in enumerate((-1.5, -0.5, 0.5, 1.5)):
        root = palm + d * reach * 0.3 + n * off * width * 1.1
        length = reach * (0.55 + 0.12 * (1.5 - abs(off))) * rng.uniform(0.8, 1.05)
        bend = d * math.cos(0.2 * k) + n * 0.1 * off
        tip = root + bend / np.linalg.norm(bend) * length
        cv2.line(
            shape, tuple(int(v) for v in root), tuple(int(v) for v in tip), 255, width, cv2.LINE_AA
        )
    thumb_root = palm + n * axes[1] * 0.9
    thumb_tip = thumb_root + (d * 0.6 + n * 0.8) * reach * 0.45
    cv2.line(
        shape,
        tuple(int(v) for v in thumb_root),
        tuple(int(v) for v in thumb_tip),
        255,
        width + 1,
        cv2.LINE_AA,
    )
    a = shape.astype(np.float32) / 255
    inner = cv2.GaussianBlur(a, (0, 0), 4 * u)
    shading = 0.7 + 0.35 * inner
    shadow = np.roll(cv2.GaussianBlur(a, (0, 0), 6 * u), (int(6 * u), int(6 * u)), axis=(0, 1))
    img *= (1 - 0.4 * shadow)[..., None]
    img[:] = img * (1 - a[..., None]) + (color * shading[..., None]) * a[..., None]
    return a > 0.5, "glove" if is_glove else "hand"
