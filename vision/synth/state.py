"""The physical state of one returned item, and a sampler that hits a target grade.

An ``ItemState`` is everything that is true of the item whatever photo is taken of it:
packaging, damage with severities, and a ``detail_seed`` that fixes where each damage
sits, so several photos of one item show the same scratch in the same place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vision.synth.catalog import SkuSpec
from vision.synth.labels import (
    BREAKING,
    CATEGORY_DAMAGE,
    COSMETIC,
    DAMAGE_LABELS,
    GRADE_LABELS,
    grade_for,
)

# Sampling ranges keep a margin around the grade thresholds (0.35 and 0.75).
MINOR_RANGE = (0.08, 0.27)
VISIBLE_RANGE = (0.42, 0.66)
BREAK_RANGE = (0.35, 1.0)
SEVERE_RANGE = (0.84, 1.0)


@dataclass(frozen=True)
class ItemState:
    """Packaging (``sealed``/``opened``), damage ``(label, severity)`` pairs in
    DAMAGE_LABELS order, whether an open retail box (tray) is shown behind the item, and
    the seed that places the damage."""

    packaging: str
    damage: tuple[tuple[str, float], ...]
    detail_seed: int
    tray: bool = False

    @property
    def grade(self) -> str:
        return grade_for(self.packaging, self.damage)

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.damage]

    def severity(self, label: str) -> float:
        return dict(self.damage).get(label, 0.0)


def allowed_damage(sku: SkuSpec) -> tuple[str, ...]:
    """Damage types that make sense (and are rendered) for this SKU."""
    labels = CATEGORY_DAMAGE[sku.category]
    if sku.category == "garment" and sku.style in ("tee", "sweater"):
        labels = tuple(x for x in labels if x != "missing_part")  # no buttons to lose
    return labels


def _u(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return round(float(rng.uniform(*bounds)), 3)


def _visible_damage(label: str, rng: np.random.Generator) -> tuple[str, float]:
    return (label, _u(rng, VISIBLE_RANGE))


def sample_state(sku: SkuSpec, grade: str, rng: np.random.Generator) -> ItemState:
    """A random item state of ``sku`` whose rule-derived grade is ``grade``."""
    if grade not in GRADE_LABELS:
        raise ValueError(f"unknown grade {grade!r}")
    allowed = allowed_damage(sku)
    is_box = sku.category == "box"
    seed = int(rng.integers(0, 2**31 - 1))
    damage: dict[str, float] = {}
    level = GRADE_LABELS.index(grade)
    if level == 2:
        cosmetic = [x for x in allowed if x in COSMETIC]
        k = 2 if len(cosmetic) > 1 and rng.random() < 0.25 else 1
        for label in rng.choice(cosmetic, size=k, replace=False):
            damage[str(label)] = _u(rng, MINOR_RANGE)
    elif level == 3:
        visible = [x for x in allowed if x not in BREAKING]
        k = 2 if rng.random() < 0.3 else 1
        for label in rng.choice(visible, size=k, replace=False):
            damage.update([_visible_damage(str(label), rng)])
    elif level == 4:
        breaking = [x for x in allowed if x in BREAKING]
        visible = [x for x in allowed if x not in BREAKING]
        if breaking and rng.random() < 0.8:
            damage[str(rng.choice(breaking))] = _u(rng, BREAK_RANGE)
        else:
            damage[str(rng.choice(visible))] = _u(rng, SEVERE_RANGE)
        extra = [x for x in visible if x not in damage]
        if extra and rng.random() < 0.3:
            damage.update([_visible_damage(str(rng.choice(extra)), rng)])
    if level == 0:
        packaging = "sealed"
    elif is_box and level >= 2:
        packaging = "sealed" if rng.random() < 0.5 else "opened"
    else:
        packaging = "opened"
    tray = not is_box and (
        "packaging_damage" in damage or (packaging == "opened" and rng.random() < 0.3)
    )
    ordered = tuple((label, damage[label]) for label in DAMAGE_LABELS if label in damage)
    state = ItemState(packaging=packaging, damage=ordered, detail_seed=seed, tray=tray)
    assert state.grade == grade, (state, grade)
    return state
