"""The "wide" variety: the classic renders plus everything a dock camera and a shopper's
phone see that is never damage.

Why: the model trained on classic renders only called labels, QR codes and stickers
damage. Wide mode keeps every label exactly as classic draws it (``plan_item`` is
untouched, so grade and damage for a seed are the same) and varies only the photo:

- A share ``SynthConfig.dock_share`` (default 0.35, spread evenly over indices) are
  dock scenes: top-down onto a dock table, conveyor or concrete, any rotation, always a
  parcel label with a QR code and a barcode (on the item or beside it on the table), and
  by chance tape, stickers, ink stamps, packing material and a gloved or bare hand.
- The rest are shopper scenes: home surfaces incl. carpet and concrete, clutter at the
  edges, and by chance stickers, tape, a leftover parcel label, packing material, a hand.
- Every wide photo may get a cast shadow, a colour cast, camera tilt (shopper only),
  mild lens blur, sensor noise and an earlier harsher JPEG generation. The chances are
  ``DOCK``/``SHOP`` below. Bad photos keep their defect and skip tilt and extra blur.

Mask rule: stickers, labels, stamps and opaque tape never cover damage (see
``dockmarks.stick``); a hand drawn over the item clears the mask where it is opaque.
Streams: the photo draws from ``rng([seed, 41, index])``, never the classic stream.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from vision.synth import camera, dockmarks, packing
from vision.synth.backdrops import DOCK_SURFACES, HOME_SURFACES, clutter, wide_background
from vision.synth.catalog import SkuSpec
from vision.synth.hands import hand
from vision.synth.render import RenderedItem, render_item
from vision.synth.scene import _camera, _composite, _lighting, _placement
from vision.synth.state import ItemState

VARIETIES: tuple[str, ...] = ("classic", "wide")
_SILVER = 0.41421356237309503  # sqrt(2) - 1: dock share spread, decorrelated from bad photos
DOCK = {
    "tape": 0.5,
    "sticker": 0.4,
    "stamp": 0.3,
    "packing": 0.4,
    "hand": 0.35,
    "shadow": 0.2,
    "cast": 0.3,
    "blur": 0.3,
    "noise": 0.5,
    "jpeg": 0.3,
}
SHOP = {
    "label": 0.1,
    "tape": 0.15,
    "sticker": 0.35,
    "packing": 0.15,
    "hand": 0.25,
    "clutter": 0.5,
    "shadow": 0.4,
    "cast": 0.5,
    "tilt": 0.5,
    "blur": 0.3,
    "noise": 0.5,
    "jpeg": 0.3,
}


def is_dock(index: int, dock_share: float) -> bool:
    """Low-discrepancy choice of the dock-scene photos: the share holds for small counts."""
    return ((index + 1) * _SILVER) % 1.0 < dock_share


def decorate(
    item: RenderedItem,
    rng: np.random.Generator,
    p: dict[str, float],
    size: int,
    label_on_item: bool,
) -> tuple[RenderedItem, list[str]]:
    """Tape, parcel label, stickers and stamps on the item cut-out (never over damage)."""
    rgba, mask = item.rgba.copy(), item.mask
    side = rgba.shape[0]
    done: list[str] = []
    if rng.random() < p["tape"]:
        done.append(f"tape_{packing.tape(rgba, mask, rng)}")
    if label_on_item:
        lab = dockmarks.parcel_label(rng, int(side * rng.uniform(0.3, 0.42)))
        if dockmarks.stick(rgba, mask, dockmarks.rotate(lab, rng.uniform(-20, 20)), rng):
            done.append("parcel_label")
    for _ in range(int(rng.integers(1, 3)) if rng.random() < p["sticker"] else 0):
        names = tuple(dockmarks.STICKER_MAKERS)
        name = names[int(rng.integers(0, len(names)))]
        patch = dockmarks.STICKER_MAKERS[name](rng, int(side * rng.uniform(0.14, 0.24)))
        if dockmarks.stick(rgba, mask, dockmarks.rotate(patch, rng.uniform(-30, 30)), rng):
            done.append(name)
    if rng.random() < p.get("stamp", 0.0):
        patch = dockmarks.stamp(rng, int(side * rng.uniform(0.2, 0.3)))
        if dockmarks.stick(rgba, mask, dockmarks.rotate(patch, rng.uniform(-15, 15)), rng):
            done.append("stamp")
    return RenderedItem(rgba=rgba, mask=mask, bbox=item.bbox), done


def dock_placement(item: RenderedItem, size: int, rng: np.random.Generator) -> np.ndarray:
    """Top-down: the item at any rotation, 45-70% of the frame, fully in view."""
    x0, y0, x1, y1 = item.bbox
    src = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    scale = rng.uniform(0.45, 0.7) * size / max(x1 - x0, y1 - y0)
    a = rng.uniform(0, 2 * math.pi)
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]], np.float32)
    dst = (src - src.mean(axis=0)) * scale @ rot
    lo, hi = dst.min(axis=0), dst.max(axis=0)
    margin = 0.03 * size
    pos = [
        rng.uniform(margin - lo[i], max(margin - lo[i], size - margin - hi[i])) for i in range(2)
    ]
    return cv2.getPerspectiveTransform(src, (dst + np.array(pos, np.float32)).astype(np.float32))


def _label_on_table(
    bg: np.ndarray, H: np.ndarray, item: RenderedItem, rng: np.random.Generator
) -> None:
    """A parcel label lying on the table beside the item (the dock simulator's layout)."""
    size = bg.shape[0]
    lab = dockmarks.rotate(
        dockmarks.parcel_label(rng, int(size * rng.uniform(0.18, 0.26))), rng.uniform(-25, 25)
    )
    lh, lw = lab.shape[:2]
    if lh >= size or lw >= size:
        return
    x0, y0, x1, y1 = item.bbox
    quad = cv2.perspectiveTransform(
        np.array([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]], np.float32), H
    )[0]
    qlo, qhi = quad.min(axis=0), quad.max(axis=0)
    best = (0, 0)
    for _ in range(12):
        x, y = int(rng.integers(0, size - lw)), int(rng.integers(0, size - lh))
        best = (x, y)
        if x + lw < qlo[0] or x > qhi[0] or y + lh < qlo[1] or y > qhi[1]:
            break
    x, y = best
    a = lab[..., 3:4].astype(np.float32) / 255
    region = bg[y : y + lh, x : x + lw]
    bg[y : y + lh, x : x + lw] = region * (1 - a) + lab[..., :3].astype(np.float32) * a


def render_wide(
    sku: SkuSpec,
    state: ItemState,
    rng: np.random.Generator,
    size: int,
    *,
    bad: str | None,
    dock: bool,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A wide-variety photo: (RGB uint8, damage-mask bitfield uint8, meta dict)."""
    p = DOCK if dock else SHOP
    surfaces = DOCK_SURFACES if dock else HOME_SURFACES
    kind = surfaces[int(rng.integers(0, len(surfaces)))]
    bg = wide_background(kind, size, rng)
    decor: list[str] = []
    if rng.random() < p.get("clutter", 0.0):
        decor += [f"clutter_{c}" for c in clutter(bg, rng)]
    if rng.random() < p["packing"]:
        fill = packing.bubble_wrap if rng.random() < 0.5 else packing.paper_fill
        fill(bg, rng)
        decor.append(fill.__name__)
    canvas = max(32, round((0.2 if bad == "small" else 0.72) * size / 0.86))
    item = render_item(sku, state, rng, canvas)
    label = dock or rng.random() < p.get("label", 0.0)
    on_item = label and (not dock or rng.random() < 0.6)
    item, marks = decorate(item, rng, p, size, on_item)
    decor += marks
    on_item = "parcel_label" in marks  # a label that found no free spot goes on the table
    upright = sku.category in ("mug", "shoe", "box")
    H = (
        dock_placement(item, size, rng)
        if dock and bad != "cut_off"
        else _placement(item, size, rng, bad, upright)
    )
    if label and not on_item:
        _label_on_table(bg, H, item, rng)
        decor.append("parcel_label_table")
    img, mask = _composite(item, bg, H, rng)
    if rng.random() < p["hand"]:
        cover, who = hand(img, rng, glove_p=0.6 if dock else 0.15)
        mask[cover] = 0
        decor.append(who)
    if rng.random() < p["shadow"]:
        camera.cast_shadow(img, rng)
        decor.append("cast_shadow")
    img = _lighting(img, rng, bad)
    if rng.random() < p["cast"]:
        decor.append(f"cast_{camera.colour_cast(img, rng)}")
    if bad is None and rng.random() < p.get("tilt", 0.0):
        img, mask = camera.keystone(img, mask, rng)
        decor.append("tilt")
    if bad is None and rng.random() < p["blur"]:
        img = camera.lens_blur(img, rng)
        decor.append("lens_blur")
    if rng.random() < p["noise"]:
        camera.sensor_noise(img, rng)
        decor.append("sensor_noise")
    rgb = _camera(img, rng, bad)
    if rng.random() < p["jpeg"]:
        rgb = camera.jpeg_generation(rgb, rng)
        decor.append("jpeg_generation")
    return (
        rgb,
        mask,
        {
            "variety": "wide",
            "scene": "dock" if dock else "shopper",
            "background": kind,
            "decor": decor,
        },
    )


def render_wide_record(config: Any, index: int) -> tuple[dict[str, Any], bytes, bytes]:
    """``dataset.render_record`` for ``variety == "wide"``: the same item plan, bad-photo
    choice and record fields; the photo from its own stream; meta says what was added."""
    from vision.synth.dataset import bad_kind_of, encode_record, plan_item

    item_index = index // config.photos_per_item
    plan = plan_item(config, item_index)
    rng = np.random.default_rng([config.seed, 41, index])
    bad = bad_kind_of(config, index)
    dock = is_dock(index, config.dock_share)
    rgb, mask, extra = render_wide(plan.sku, plan.state, rng, config.image_size, bad=bad, dock=dock)
    return encode_record(config, index, plan, rgb, mask, rng, bad=bad, scene={}, extra=extra)
