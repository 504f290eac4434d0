"""Render one item (with its packaging and damage) as an RGBA cut-out plus a damage mask.

Layers, bottom to top: open retail box (``state.tray``), the item with its damage,
shrink-wrap (``sealed`` non-box items). Damage placement comes from
``state.detail_seed`` only, so every photo of one item shows the same damage; the
``view`` generator only changes view-dependent looks (glare, wrap reflections).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from vision.synth.canvas import Layer, over
from vision.synth.catalog import SkuSpec
from vision.synth.items import book, box, garment, mug, phone, shoe
from vision.synth.labels import DAMAGE_LABELS, damage_bit
from vision.synth.packaging import STICKERS, shrink_wrap, tray
from vision.synth.state import ItemState

RENDERERS: dict[str, ModuleType] = {
    "box": box,
    "phone": phone,
    "mug": mug,
    "shoe": shoe,
    "garment": garment,
    "book": book,
}


@dataclass(frozen=True)
class RenderedItem:
    """``rgba``: (S,S,4) uint8, straight alpha. ``mask``: (S,S) uint8 bitfield, bit i set
    where DAMAGE_LABELS[i] is visible. ``bbox``: (x0, y0, x1, y1) of alpha > 0."""

    rgba: np.ndarray
    mask: np.ndarray
    bbox: tuple[int, int, int, int]

    def damage_mask(self, label: str) -> np.ndarray:
        return (self.mask & damage_bit(label)) > 0


def item_aspect(sku: SkuSpec) -> float:
    """Width / height of the rectangle the category renderer draws into."""
    if sku.category == "mug":
        return sku.aspect * 1.35
    if sku.category == "box":
        return 1.0
    return sku.aspect


def item_rect(sku: SkuSpec, size: int, with_tray: bool) -> tuple[float, float, float, float]:
    extent = size * (0.62 if with_tray else 0.84)
    a = item_aspect(sku)
    w, h = (extent, extent / a) if a >= 1 else (extent * a, extent)
    c = size / 2
    return (c - w / 2, c - h / 2, c + w / 2, c + h / 2)


def render_item(
    sku: SkuSpec, state: ItemState, rng: np.random.Generator, size: int
) -> RenderedItem:
    """The item as an RGBA cut-out (for compositing into any scene) plus its damage mask."""
    renderer = RENDERERS[sku.category]
    rect = item_rect(sku, size, state.tray)
    item = Layer(size)
    geom = renderer.draw(item, sku, rect, state, rng)
    for label, sev in state.damage:
        if label == "packaging_damage" and sku.category != "box":
            continue  # drawn on the tray
        renderer.damage(
            item,
            geom,
            sku,
            label,
            sev,
            np.random.default_rng([state.detail_seed, DAMAGE_LABELS.index(label)]),
        )
    layer = item
    if state.tray:
        torn = state.severity("packaging_damage") if "packaging_damage" in state.labels else None
        layer = over(layer, tray(size, rect, np.random.default_rng([state.detail_seed, 99]), torn))
    if state.packaging == "sealed" and sku.category != "box":
        color = STICKERS[state.detail_seed % len(STICKERS)]
        layer = over(shrink_wrap(size, rect, rng, color), layer)
    ys, xs = np.nonzero(layer.alpha > 8)
    bbox = (
        (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        if len(xs)
        else (0, 0, size, size)
    )
    rgba = np.dstack([layer.rgb, layer.alpha])
    return RenderedItem(rgba=rgba, mask=layer.mask, bbox=bbox)
