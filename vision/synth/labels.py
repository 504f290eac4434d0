"""Label sets, which damage makes sense on which category, and the grade rule.

The grade is a pure function of what happened to the item (its damage and whether the
packaging is still sealed), so a label can always be re-derived and checked. The rule:

1. no damage and packaging ``sealed``             -> ``A_new``
2. no damage and packaging ``opened``             -> ``B_like_new``
3. any ``crack`` or ``missing_part``, or any damage
   with severity >= ``SEVERE_MIN`` (0.75)         -> ``E_damaged``   (broken / unsellable)
4. only ``scratch``/``stain`` and all of them with
   severity < ``MINOR_MAX`` (0.35)                -> ``C_good``      (minor cosmetic marks)
5. anything else (dent, tear, packaging damage, or
   a large scratch/stain)                         -> ``D_fair``      (visible, still works)

The sampler (``state.py``) keeps severities away from the two thresholds, so the grades it
produces are separated by a visible margin rather than by an invisible 0.01 of severity.
"""

from __future__ import annotations

from collections.abc import Iterable

GRADE_LABELS: tuple[str, ...] = ("A_new", "B_like_new", "C_good", "D_fair", "E_damaged")
DAMAGE_LABELS: tuple[str, ...] = (
    "scratch",
    "dent",
    "crack",
    "stain",
    "tear",
    "missing_part",
    "packaging_damage",
)
CATEGORIES: tuple[str, ...] = ("box", "phone", "mug", "shoe", "garment", "book")
PACKAGING_STATES: tuple[str, ...] = ("sealed", "opened")
BAD_KINDS: tuple[str, ...] = ("blur", "dark", "bright", "cut_off", "small")

MINOR_MAX = 0.35
SEVERE_MIN = 0.75
BREAKING = frozenset({"crack", "missing_part"})
COSMETIC = frozenset({"scratch", "stain"})

# Where each damage type is physically plausible (and rendered) per category.
CATEGORY_DAMAGE: dict[str, tuple[str, ...]] = {
    "box": ("dent", "stain", "tear", "packaging_damage"),
    "phone": ("scratch", "dent", "crack", "missing_part", "packaging_damage"),
    "mug": ("scratch", "crack", "stain", "missing_part", "packaging_damage"),
    "shoe": ("scratch", "stain", "tear", "missing_part", "packaging_damage"),
    "garment": ("stain", "tear", "missing_part", "packaging_damage"),
    "book": ("dent", "stain", "tear", "missing_part", "packaging_damage"),
}


def damage_bit(label: str) -> int:
    """Bit value of ``label`` in the uint8 damage-mask bitfield."""
    return 1 << DAMAGE_LABELS.index(label)


def grade_for(packaging: str, damage: Iterable[tuple[str, float]]) -> str:
    """The documented grade rule (see the module docstring)."""
    items = list(damage)
    if not items:
        return GRADE_LABELS[0] if packaging == "sealed" else GRADE_LABELS[1]
    if any(label in BREAKING or sev >= SEVERE_MIN for label, sev in items):
        return GRADE_LABELS[4]
    if all(label in COSMETIC and sev < MINOR_MAX for label, sev in items):
        return GRADE_LABELS[2]
    return GRADE_LABELS[3]
