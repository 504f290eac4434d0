"""Deterministic SKU definitions: the same seed always yields the same catalog.

SKUs of one category differ in several visible ways at once (hue spaced around the
colour wheel, style/silhouette, pattern, motif and proportions), so that a
same-SKU-vs-different-SKU embedding can be learned from the pixels.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from vision.synth.labels import CATEGORIES

RGB = tuple[int, int, int]

STYLES: dict[str, tuple[str, ...]] = {
    "box": ("shipping", "retail", "mailer", "carton"),
    "phone": ("punch", "notch", "tablet", "bezel"),
    "mug": ("classic", "tall", "tapered", "wide"),
    "shoe": ("sneaker", "hightop", "runner", "court"),
    "garment": ("tee", "shirt", "sweater", "polo"),
    "book": ("hardcover", "paperback", "hardcover", "paperback"),
}
PATTERNS: dict[str, tuple[str, ...]] = {
    "box": ("logo", "band", "arrows", "corner"),
    "phone": ("gradient", "waves", "circles", "stripes"),
    "mug": ("band", "dots", "two_tone", "stripes"),
    "shoe": ("stripes", "swoosh", "panel", "heel_tab"),
    "garment": ("plain", "stripes", "checks", "dots"),
    "book": ("sun", "mountains", "stripes", "blocks"),
}
MOTIFS: tuple[str, ...] = ("circle", "star", "triangle", "diamond", "heart", "ring")
PRODUCT_NAMES: dict[tuple[str, str], str] = {
    ("box", "shipping"): "Parcel in a shipping carton",
    ("box", "retail"): "Retail-boxed parcel",
    ("box", "mailer"): "Flat mailer parcel",
    ("box", "carton"): "Parcel in a tall carton",
    ("phone", "punch"): "Pro smartphone",
    ("phone", "notch"): "Classic smartphone",
    ("phone", "tablet"): "11-inch tablet",
    ("phone", "bezel"): "Lite smartphone",
    ("mug", "classic"): "Stoneware mug",
    ("mug", "tall"): "Tall travel mug",
    ("mug", "tapered"): "Tapered ceramic mug",
    ("mug", "wide"): "Wide latte mug",
    ("shoe", "sneaker"): "Canvas sneaker",
    ("shoe", "hightop"): "High-top sneaker",
    ("shoe", "runner"): "Running shoe",
    ("shoe", "court"): "Court shoe",
    ("garment", "tee"): "Cotton T-shirt",
    ("garment", "shirt"): "Button-down shirt",
    ("garment", "sweater"): "V-neck sweater",
    ("garment", "polo"): "Polo shirt",
    ("book", "hardcover"): "Hardcover book",
    ("book", "paperback"): "Paperback book",
}
PRICE_RANGE: dict[str, tuple[float, float]] = {
    "box": (25.0, 180.0),
    "phone": (199.0, 999.0),
    "mug": (8.0, 28.0),
    "shoe": (45.0, 160.0),
    "garment": (14.0, 90.0),
    "book": (9.0, 40.0),
}
_HUE_NAMES = (
    (0.03, "red"),
    (0.07, "vermilion"),
    (0.11, "orange"),
    (0.15, "amber"),
    (0.19, "yellow"),
    (0.26, "lime"),
    (0.38, "green"),
    (0.47, "teal"),
    (0.54, "cyan"),
    (0.62, "azure"),
    (0.70, "blue"),
    (0.78, "indigo"),
    (0.85, "violet"),
    (0.92, "magenta"),
    (0.97, "rose"),
    (1.01, "red"),
)


@dataclass(frozen=True)
class SkuSpec:
    """One catalog product and every parameter its renderer needs."""

    sku: str
    category: str
    name: str
    price: float
    style: str
    pattern: str
    motif: str
    primary: RGB
    secondary: RGB
    accent: RGB
    aspect: float  # body width / height (category-specific meaning)
    variant: float  # 0..1 free shape parameter (e.g. taper, sole height, band position)

    def to_json(self, reference: str) -> dict[str, object]:
        """Catalog line (``catalog.jsonl``), see datasets/README.md."""
        return {
            "sku": self.sku,
            "category": self.category,
            "name": self.name,
            "price": self.price,
            "reference": reference,
            "style": self.style,
            "colour": colour_name(self.primary),
        }


def hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (round(r * 255), round(g * 255), round(b * 255))


def colour_name(rgb: RGB) -> str:
    """A human colour word for names like "Stoneware mug, teal"."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    if v < 0.22:
        return "black"
    if s < 0.18:
        return "white" if v > 0.8 else "grey"
    return next(name for limit, name in _HUE_NAMES if h < limit)


def _cycle(options: tuple[str, ...], rng: np.random.Generator, n: int) -> list[str]:
    order = [options[i] for i in rng.permutation(len(options))]
    return [order[i % len(order)] for i in range(n)]


def _aspect(category: str, style: str, rng: np.random.Generator) -> float:
    if category == "phone":
        return float(rng.uniform(0.68, 0.76) if style == "tablet" else rng.uniform(0.46, 0.53))
    if category == "box":
        base = {"shipping": 1.25, "retail": 0.95, "mailer": 1.7, "carton": 0.7}[style]
        return float(base * rng.uniform(0.92, 1.08))
    if category == "mug":
        base = {"classic": 0.95, "tall": 0.75, "tapered": 0.9, "wide": 1.25}[style]
        return float(base * rng.uniform(0.94, 1.06))
    if category == "book":
        return float(rng.uniform(0.6, 0.76))
    if category == "garment":
        return float(rng.uniform(0.8, 0.95))
    return float(rng.uniform(1.9, 2.2))  # shoe: length / height


def catalog_skus(seed: int, skus_per_category: int = 4) -> list[SkuSpec]:
    """All SKUs, category by category, deterministic in (seed, skus_per_category)."""
    skus: list[SkuSpec] = []
    for ci, category in enumerate(CATEGORIES):
        rng = np.random.default_rng([seed, 1013, ci])
        n = skus_per_category
        styles = _cycle(STYLES[category], rng, n)
        patterns = _cycle(PATTERNS[category], rng, n)
        motifs = _cycle(MOTIFS, rng, n)
        hue0 = float(rng.random())
        for i in range(n):
            hue = hue0 + (i + rng.uniform(-0.2, 0.2)) / n
            sat = rng.uniform(0.5, 0.85)
            val = rng.uniform(0.55, 0.88)
            primary = hsv(hue, sat, val)
            if category == "phone" and i % 2 == 1:  # metallic neutrals exist too
                primary = hsv(hue, rng.uniform(0.05, 0.2), rng.uniform(0.25, 0.85))
            secondary = hsv(
                hue + rng.uniform(0.35, 0.65), rng.uniform(0.4, 0.8), rng.uniform(0.6, 0.95)
            )
            accent = hsv(
                hue + rng.uniform(-0.1, 0.1), rng.uniform(0.1, 0.4), rng.uniform(0.85, 1.0)
            )
            lo, hi = PRICE_RANGE[category]
            price = (
                round(float(rng.uniform(lo, hi)) * (1.4 if styles[i] == "tablet" else 1.0)) - 0.01
            )
            name = f"{PRODUCT_NAMES[category, styles[i]]}, {colour_name(primary)}"
            skus.append(
                SkuSpec(
                    sku=f"{category}-{i + 1:02d}",
                    category=category,
                    name=name,
                    price=float(price),
                    style=styles[i],
                    pattern=patterns[i],
                    motif=motifs[i],
                    primary=primary,
                    secondary=secondary,
                    accent=accent,
                    aspect=_aspect(category, styles[i], rng),
                    variant=float(rng.random()),
                )
            )
    return skus
